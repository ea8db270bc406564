package xenmca.client;

import java.util.Locale;
import com.google.protobuf.ProtocolMessageEnum;

/**
 * SAL statuses, and the short spellings of record types and severities the xenmca tools print
 * ("CMC", "corrected") for the proto enum names.
 */
public final class Names {
  private Names() {}

  /** SAL_GET/CLEAR_STATE_INFO completed. */
  public static final int SAL_OK = 0;

  /** The owning pCPU could not be reached; the coordinator keeps the entry. */
  public static final int SAL_CALL_ERROR = -3;

  /** No information available (nothing queued, or the caller is not dom0). */
  public static final int SAL_NO_INFORMATION = -5;

  /** "CMC" for "RECORD_TYPE_CMC" (other names pass through). */
  public static String typeLabel(String enumName) {
    return enumName.startsWith("RECORD_TYPE_") ? enumName.substring("RECORD_TYPE_".length()) : enumName;
  }

  /** "CMC" for the RecordType number 3; the number itself for one these protos do not name. */
  public static String typeLabel(int number) {
    xenmca.record.v1.Record.RecordType type = xenmca.record.v1.Record.RecordType.forNumber(number);
    return type == null ? Integer.toString(number) : typeLabel(type.name());
  }

  /** "corrected" for "SEVERITY_CORRECTED" (other names pass through, lower-cased). */
  public static String severityLabel(String enumName) {
    String name = enumName.startsWith("SEVERITY_") ? enumName.substring("SEVERITY_".length()) : enumName;
    return name.toLowerCase(Locale.ROOT);
  }

  /**
   * The enum value's proto name; for a number these protos do not name (UNRECOGNIZED), the number,
   * as the Node client shows it.
   */
  public static String enumName(ProtocolMessageEnum value, int number) {
    if (value instanceof Enum && ((Enum<?>) value).name().equals("UNRECOGNIZED")) return Integer.toString(number);
    return value.getValueDescriptor().getName();
  }
}
