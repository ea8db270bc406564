package xenmca.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.OneofDescriptor;
import com.google.protobuf.Message;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Messages as plain JSON-ready objects, shaped as the Node client's {@code @grpc/proto-loader}
 * decodes them ({@code keepCase, longs: String, enums: String, bytes: String, defaults: true,
 * oneofs: true}): proto field names, 64-bit integers as decimal strings, enums by name, bytes as
 * base64, unset scalars as their zero value, unset messages as {@code null}, and a oneof's name
 * naming its set member.
 *
 * <p>The keys come in protobuf.js's order: repeated fields, then maps, then the other fields (each
 * group by field number), then any set oneof member followed by its oneof's name.
 */
public final class ProtoObjects {
  private ProtoObjects() {}

  /** The message as an ordered map. */
  public static Map<String, Object> toObject(Message message) {
    List<FieldDescriptor> fields = new ArrayList<>(message.getDescriptorForType().getFields());
    fields.sort(Comparator.comparingInt(FieldDescriptor::getNumber));
    Map<String, Object> out = new LinkedHashMap<>();
    for (FieldDescriptor field : fields) {
      if (field.getContainingOneof() == null && field.isRepeated() && !field.isMapField()) {
        out.put(field.getName(), new ArrayList<>());
      }
    }
    for (FieldDescriptor field : fields) {
      if (field.getContainingOneof() == null && field.isMapField()) out.put(field.getName(), new LinkedHashMap<>());
    }
    for (FieldDescriptor field : fields) {
      if (field.getContainingOneof() == null && !field.isRepeated()) out.put(field.getName(), defaultOf(field));
    }
    for (FieldDescriptor field : fields) {
      if (field.isMapField()) {
        Map<String, Object> map = new LinkedHashMap<>();
        FieldDescriptor keyField = field.getMessageType().findFieldByName("key");
        FieldDescriptor valueField = field.getMessageType().findFieldByName("value");
        for (int i = 0; i < message.getRepeatedFieldCount(field); i++) {
          Message entry = (Message) message.getRepeatedField(field, i);
          map.put(String.valueOf(scalar(keyField, entry.getField(keyField))), scalar(valueField, entry.getField(valueField)));
        }
        out.put(field.getName(), map);
      } else if (field.isRepeated()) {
        List<Object> list = new ArrayList<>();
        for (int i = 0; i < message.getRepeatedFieldCount(field); i++) {
          list.add(scalar(field, message.getRepeatedField(field, i)));
        }
        out.put(field.getName(), list);
      } else {
        OneofDescriptor oneof = field.getContainingOneof();
        boolean present = field.getType() == FieldDescriptor.Type.MESSAGE || oneof != null
            ? message.hasField(field)
            : true;
        if (!present) continue;
        out.put(field.getName(), scalar(field, message.getField(field)));
        if (oneof != null) out.put(oneof.getName(), field.getName());
      }
    }
    return out;
  }

  private static Object defaultOf(FieldDescriptor field) {
    switch (field.getJavaType()) {
      case MESSAGE:
        return null;
      case ENUM:
        return field.getEnumType().getValues().get(0).getName();
      default:
        return scalar(field, field.getDefaultValue());
    }
  }

  /** One value of field, converted. */
  static Object scalar(FieldDescriptor field, Object value) {
    switch (field.getType()) {
      case INT32:
      case SINT32:
      case SFIXED32:
        return (Integer) value;
      case UINT32:
      case FIXED32:
        return Integer.toUnsignedLong((Integer) value);
      case INT64:
      case SINT64:
      case SFIXED64:
        return Long.toString((Long) value);
      case UINT64:
      case FIXED64:
        return Long.toUnsignedString((Long) value);
      case FLOAT:
        return (double) (Float) value;
      case DOUBLE:
        return (Double) value;
      case BOOL:
        return (Boolean) value;
      case STRING:
        return (String) value;
      case BYTES:
        return Base64.getEncoder().encodeToString(((ByteString) value).toByteArray());
      case ENUM: {
        EnumValueDescriptor enumValue = (EnumValueDescriptor) value;
        // An open enum's value this client's protos do not name travels as its number.
        return enumValue.getIndex() < 0 ? (Object) enumValue.getNumber() : enumValue.getName();
      }
      case MESSAGE:
      case GROUP:
        return toObject((Message) value);
      default:
        throw new IllegalArgumentException("unsupported field type " + field.getType());
    }
  }
}
