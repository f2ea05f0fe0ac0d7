package modelreg

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the ErrorInfo domain of every error the registry's services return.
const ErrorDomain = "modelreg.dev"

// FieldViolation is one entry of a google.rpc.BadRequest: which request field was wrong and why.
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a status the registry answered (AIP-193), or a failure of this client with a reason
// of its own (Local set: an integrity check, an unsafe manifest, a destination in the way).
//
// Branch on Code and Reason, never on Message:
//
//	var failed *modelreg.Error
//	if errors.As(err, &failed) && failed.Reason == "PROTECTED_ALIAS_VERSION_NOT_APPROVED" { ... }
//	if errors.Is(err, modelreg.ErrNotFound) { ... }
type Error struct {
	Code    codes.Code
	Message string
	// ErrorInfo.reason, UPPER_SNAKE_CASE (e.g. WRITE_OFFSET_MISMATCH); may be empty for a status
	// that did not come from a registry service (a proxy, this process's transport).
	Reason   string
	Domain   string
	Metadata map[string]string
	// BadRequest field violations (INVALID_ARGUMENT).
	FieldViolations []FieldViolation
	// True for failures detected by this client, which the services never sent.
	Local bool
	// Paths involved in a local failure (e.g. the destination paths in the way of a pull).
	Paths []string
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.Code and status.FromError read a decoded error as the status it was.
func (e *Error) GRPCStatus() *status.Status {
	return status.New(e.Code, e.Message)
}

// Is matches a template *Error by its non-zero fields: Code (unless OK) and Reason (unless
// empty). errors.Is(err, ErrUnavailable), errors.Is(err, &Error{Reason: "VERSION_SEALED"}).
func (e *Error) Is(target error) bool {
	template, ok := target.(*Error)
	if !ok {
		return false
	}
	if template.Code != codes.OK && template.Code != e.Code {
		return false
	}
	if template.Reason != "" && template.Reason != e.Reason {
		return false
	}
	return template.Code != codes.OK || template.Reason != ""
}

// Templates for errors.Is, one per status code a caller commonly branches on.
var (
	ErrInvalidArgument    = &Error{Code: codes.InvalidArgument}
	ErrNotFound           = &Error{Code: codes.NotFound}
	ErrAlreadyExists      = &Error{Code: codes.AlreadyExists}
	ErrPermissionDenied   = &Error{Code: codes.PermissionDenied}
	ErrUnauthenticated    = &Error{Code: codes.Unauthenticated}
	ErrFailedPrecondition = &Error{Code: codes.FailedPrecondition}
	ErrAborted            = &Error{Code: codes.Aborted}
	ErrOutOfRange         = &Error{Code: codes.OutOfRange}
	ErrUnavailable        = &Error{Code: codes.Unavailable}
	ErrDataLoss           = &Error{Code: codes.DataLoss}
	ErrDeadlineExceeded   = &Error{Code: codes.DeadlineExceeded}
)

// FromStatus decodes a gRPC error into *Error with its ErrorInfo and BadRequest details.
// Errors that carry no gRPC status (nil, io errors, an *Error already) are returned as they are.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	var decoded *Error
	if errors.As(err, &decoded) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	out := &Error{Code: st.Code(), Message: st.Message()}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			out.Reason, out.Domain = d.GetReason(), d.GetDomain()
			if len(d.GetMetadata()) > 0 {
				out.Metadata = d.GetMetadata()
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out.FieldViolations = append(out.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		}
	}
	return out
}

// Reason is the ErrorInfo reason of err (or of a local failure), "" when it has none.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Code is the gRPC status code of err: codes.OK for nil, codes.Unknown for an error without one.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

func localError(code codes.Code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...), Local: true}
}

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
	codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
	codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
	codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

// CodeName is a status code as the gRPC spec and the other languages spell it (FAILED_PRECONDITION).
func CodeName(code codes.Code) string {
	if name, ok := codeNames[code]; ok {
		return name
	}
	return code.String()
}
