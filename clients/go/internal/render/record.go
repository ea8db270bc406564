package render

import (
	"strconv"
	"strings"
	"time"

	"xenmca.dev/clients/go/internal/jsobj"
	"xenmca.dev/clients/go/internal/names"

	"google.golang.org/protobuf/types/known/timestamppb"
	recordv1 "xenmca.dev/clients/go/gen/xenmca/record/v1"
)

// RecordLine is the log line (without the newline) for a record GetStateInfo
// returned: pcpu, record_id (a decimal string), type ("CMC"), severity
// ("corrected"), created_at (RFC 3339 UTC with nanoseconds, or null), overflow,
// sections (error_recovery_info and the one set body member, fields by proto
// name), by_ipi, and with raw the SAL bytes in base64.
func RecordLine(record *recordv1.ErrorRecord, byIPI, raw bool) string {
	obj := jsobj.FromMessage(record.ProtoReflect(), nil)
	line := jsobj.NewObject()
	line.Set("pcpu", float64(record.GetPcpu()))
	line.Set("record_id", strconv.FormatUint(record.GetRecordId(), 10))
	line.Set("type", names.TypeLabel(stringOf(obj, "type")))
	line.Set("severity", names.SeverityLabel(stringOf(obj, "severity")))
	if ts := TimestampISO(record.GetCreatedAt()); ts != "" {
		line.Set("created_at", ts)
	} else {
		line.Set("created_at", nil)
	}
	line.Set("overflow", record.GetOverflow())
	sections := []any{}
	if list, ok := obj.Get("sections"); ok {
		for _, s := range list.([]any) {
			sections = append(sections, sectionObject(s.(*jsobj.Object)))
		}
	}
	line.Set("sections", sections)
	line.Set("by_ipi", byIPI)
	if raw {
		v, _ := obj.Get("raw")
		line.Set("raw", v)
	}
	return jsobj.Stringify(line, "")
}

// sectionObject keeps a section's error_recovery_info and its set body member.
func sectionObject(section *jsobj.Object) *jsobj.Object {
	out := jsobj.NewObject()
	eri, _ := section.Get("error_recovery_info")
	out.Set("error_recovery_info", eri)
	if body, ok := section.Get("body"); ok {
		name := body.(string)
		member, _ := section.Get(name)
		out.Set(name, member)
	}
	return out
}

// stringOf is the text of an enum as the object shows it (a name, or a number).
func stringOf(obj *jsobj.Object, key string) string {
	switch v, _ := obj.Get(key); t := v.(type) {
	case string:
		return t
	case float64:
		return jsobj.NumberString(t)
	}
	return ""
}

// TimestampISO is "2026-11-26T00:53:46.763290145Z" for a timestamp, or "" when
// it is unset or zero. The nanoseconds are always nine digits.
func TimestampISO(ts *timestamppb.Timestamp) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return ""
	}
	t := time.Unix(ts.GetSeconds(), 0).UTC()
	year := t.Year()
	var y string
	switch {
	case year >= 0 && year <= 9999:
		y = pad(strconv.Itoa(year), 4)
	case year < 0:
		y = "-" + pad(strconv.Itoa(-year), 6)
	default:
		y = "+" + pad(strconv.Itoa(year), 6)
	}
	nanos := strconv.Itoa(int(ts.GetNanos()))
	return y + t.Format("-01-02T15:04:05") + "." + pad(nanos, 9) + "Z"
}

func pad(s string, width int) string {
	if len(s) >= width {
		return s
	}
	return strings.Repeat("0", width-len(s)) + s
}
