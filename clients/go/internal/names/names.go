// Package names holds the record types, severities and SAL statuses: the proto
// enum names and the short spellings the xenmca tools print (CMC, corrected).
package names

import (
	"fmt"
	"strings"

	recordv1 "xenmca.dev/clients/go/gen/xenmca/record/v1"
)

// SAL status values (Linux include/asm-ia64/sal.h, plus the coordinator's -3).
const (
	SalOK = 0
	// SalCallError: the owning pCPU could not be reached; the coordinator keeps the entry.
	SalCallError = -3
	// SalNoInformation: nothing queued, or the caller is not dom0.
	SalNoInformation = -5
)

// TypeLabel is "CMC" for "RECORD_TYPE_CMC" (other names pass through).
func TypeLabel(name string) string {
	return strings.TrimPrefix(name, "RECORD_TYPE_")
}

// SeverityLabel is "corrected" for "SEVERITY_CORRECTED" (other names are only lower-cased).
func SeverityLabel(name string) string {
	return strings.ToLower(strings.TrimPrefix(name, "SEVERITY_"))
}

// RecordTypeName is "RECORD_TYPE_CMC" for RECORD_TYPE_CMC, or the number as text.
func RecordTypeName(t recordv1.RecordType) string {
	if name, ok := recordv1.RecordType_name[int32(t)]; ok {
		return name
	}
	return fmt.Sprint(int32(t))
}

// RequestType checks that t names one of the four SAL record types (as the
// Node client's recordTypeEnum does before it sends a request).
func RequestType(t recordv1.RecordType) (recordv1.RecordType, error) {
	switch t {
	case recordv1.RecordType_RECORD_TYPE_MCA, recordv1.RecordType_RECORD_TYPE_INIT,
		recordv1.RecordType_RECORD_TYPE_CMC, recordv1.RecordType_RECORD_TYPE_CPE:
		return t, nil
	}
	return t, fmt.Errorf("unknown record type %q (choose from mca, init, cmc, cpe)", RecordTypeName(t))
}
