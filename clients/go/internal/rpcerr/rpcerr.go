// Package rpcerr describes failed calls in one line, as the Node client does:
// "CODE [ERROR_INFO_REASON]: details", with the reason taken from the
// google.rpc.ErrorInfo the xenmca servers put in the status details.
package rpcerr

import (
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// errorInfoType is the type URL of google.rpc.ErrorInfo in a status detail.
const errorInfoType = "type.googleapis.com/google.rpc.ErrorInfo"

// codeNames are the canonical names of the gRPC status codes.
var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// CodeName is "PERMISSION_DENIED" for codes.PermissionDenied ("CODE_n" if unknown).
func CodeName(c codes.Code) string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return "CODE_" + strconv.Itoa(int(c))
}

// Reason is the ErrorInfo reason in a failed call's status, or "".
func Reason(st *status.Status) string {
	for _, detail := range st.Proto().GetDetails() {
		if detail.GetTypeUrl() != errorInfoType {
			continue
		}
		var info errdetails.ErrorInfo
		if proto.Unmarshal(detail.GetValue(), &info) == nil {
			return info.GetReason()
		}
		return ""
	}
	return ""
}

var (
	spaces         = regexp.MustCompile(`\s+`)
	resolutionNote = regexp.MustCompile(`\s*Resolution note:\s*$`)
)

// Describe is "UNAUTHENTICATED [MISSING_CREDENTIALS]: present a valid bearer
// token ..." for a failed call, or the error's text for an error that is not
// a gRPC status.
func Describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	reason := ""
	if r := Reason(st); r != "" {
		reason = " [" + r + "]"
	}
	details := spaces.ReplaceAllString(st.Message(), " ")
	details = strings.TrimSpace(resolutionNote.ReplaceAllString(details, ""))
	return CodeName(st.Code()) + reason + ": " + details
}

// IsIdentity reports whether err means "this caller may not do that"
// (UNAUTHENTICATED or PERMISSION_DENIED): retrying will not help.
func IsIdentity(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.PermissionDenied
}
