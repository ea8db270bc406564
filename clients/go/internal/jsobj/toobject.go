package jsobj

import (
	"encoding/base64"
	"sort"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// FromMessage converts m as @grpc/proto-loader decodes it with the Node
// client's options:
//
//   - keys are the proto field names; repeated fields come first, then maps,
//     then the other fields, each group by field number (protobufjs's order);
//   - every field not in a oneof is present: unset scalars as their zero
//     value, unset messages as null, empty lists as [] and maps as {};
//   - a set oneof member is present, followed by the oneof's name holding the
//     member's name ("body": "processor");
//   - 64-bit integers are decimal strings, enums their value names (a number
//     the enum does not name stays a number), bytes base64.
//
// raw, if not nil, is m's wire encoding: map entries then keep the order in
// which they arrived, as in JavaScript (Go's maps have none). Without it map
// keys are sorted.
func FromMessage(m protoreflect.Message, raw []byte) *Object {
	desc := m.Descriptor()
	fields := make([]protoreflect.FieldDescriptor, 0, desc.Fields().Len())
	for i := 0; i < desc.Fields().Len(); i++ {
		fields = append(fields, desc.Fields().Get(i))
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].Number() < fields[j].Number() })

	var wire map[protowire.Number][][]byte
	if raw != nil {
		wire = lengthDelimited(raw)
	}

	d := NewObject()
	// Defaults first: this fixes the key order.
	for _, fd := range fields {
		if fd.ContainingOneof() == nil && fd.IsList() {
			d.Set(string(fd.Name()), []any{})
		}
	}
	for _, fd := range fields {
		if fd.ContainingOneof() == nil && fd.IsMap() {
			d.Set(string(fd.Name()), NewObject())
		}
	}
	for _, fd := range fields {
		if fd.ContainingOneof() == nil && !fd.IsList() && !fd.IsMap() {
			d.Set(string(fd.Name()), defaultValue(fd))
		}
	}
	// Then the values that are set.
	for _, fd := range fields {
		name := string(fd.Name())
		switch {
		case fd.IsMap():
			mp := m.Get(fd).Map()
			if mp.Len() == 0 {
				continue
			}
			obj := NewObject()
			valueFd := fd.MapValue()
			for _, key := range mapKeys(mp, fd.MapKey().Kind() == protoreflect.StringKind, wire[fd.Number()]) {
				obj.Set(mapKeyString(key), value(valueFd, mp.Get(key), nil))
			}
			d.Set(name, obj)
		case fd.IsList():
			list := m.Get(fd).List()
			if list.Len() == 0 {
				continue
			}
			items := make([]any, list.Len())
			occurrences := wire[fd.Number()]
			for i := range items {
				var sub []byte
				if fd.Message() != nil && i < len(occurrences) && len(occurrences) == list.Len() {
					sub = occurrences[i]
				}
				items[i] = value(fd, list.Get(i), sub)
			}
			d.Set(name, items)
		default:
			if !m.Has(fd) {
				continue
			}
			var sub []byte
			if occurrences := wire[fd.Number()]; fd.Message() != nil && len(occurrences) > 0 {
				sub = occurrences[len(occurrences)-1]
			}
			d.Set(name, value(fd, m.Get(fd), sub))
			if oneof := fd.ContainingOneof(); oneof != nil {
				d.Set(string(oneof.Name()), name)
			}
		}
	}
	return d
}

// defaultValue is what protobufjs puts in for an absent field.
func defaultValue(fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return nil
	case protoreflect.EnumKind:
		return enumName(fd, fd.Default().Enum())
	}
	return value(fd, fd.Default(), nil)
}

// value converts one scalar, enum or message value of field fd.
func value(fd protoreflect.FieldDescriptor, v protoreflect.Value, raw []byte) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return FromMessage(v.Message(), raw)
	case protoreflect.EnumKind:
		return enumName(fd, v.Enum())
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes())
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return float64(v.Int())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return float64(v.Uint())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float()
	}
	return nil
}

// enumName is the value's name, or the number when the enum has no such value.
func enumName(fd protoreflect.FieldDescriptor, n protoreflect.EnumNumber) any {
	if ev := fd.Enum().Values().ByNumber(n); ev != nil {
		return string(ev.Name())
	}
	return float64(n)
}

func mapKeyString(k protoreflect.MapKey) string {
	return k.Value().String()
}

// mapKeys are the keys of mp in the order of their first entry on the wire
// (entries holds the raw map entries; used for string keys only); keys not
// found there come after, sorted.
func mapKeys(mp protoreflect.Map, stringKeys bool, entries [][]byte) []protoreflect.MapKey {
	var keys []protoreflect.MapKey
	seen := map[string]bool{}
	if stringKeys {
		for _, entry := range entries {
			text := entryKey(entry)
			key := protoreflect.ValueOfString(text).MapKey()
			if !seen[text] && mp.Has(key) {
				seen[text] = true
				keys = append(keys, key)
			}
		}
	}
	var rest []protoreflect.MapKey
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		if !seen[mapKeyString(k)] {
			rest = append(rest, k)
		}
		return true
	})
	sort.Slice(rest, func(i, j int) bool { return mapKeyString(rest[i]) < mapKeyString(rest[j]) })
	return append(keys, rest...)
}

// entryKey is the string key (field 1) of a raw map entry.
func entryKey(entry []byte) string {
	keys := lengthDelimited(entry)[1]
	if len(keys) == 0 {
		return "" // an absent key is the empty string
	}
	return string(keys[len(keys)-1])
}

// lengthDelimited returns, for each field number, the payloads of its
// length-delimited occurrences in b in wire order (nil on malformed input).
func lengthDelimited(b []byte) map[protowire.Number][][]byte {
	out := map[protowire.Number][][]byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if typ == protowire.BytesType {
			payload, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil
			}
			out[num] = append(out[num], payload)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil
		}
		b = b[m:]
	}
	return out
}
