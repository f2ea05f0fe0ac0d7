package modelreg

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func refusal(t *testing.T) error {
	t.Helper()
	st, err := status.New(codes.FailedPrecondition, "alias production is protected").WithDetails(
		&errdetails.ErrorInfo{Reason: "PROTECTED_ALIAS_VERSION_NOT_APPROVED", Domain: ErrorDomain,
			Metadata: map[string]string{"alias": "production"}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "model_version", Description: "not approved"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestFromStatusDecodesErrorInfoAndBadRequest(t *testing.T) {
	err := fmt.Errorf("set alias: %w", FromStatus(refusal(t)))
	var decoded *Error
	if !errors.As(err, &decoded) {
		t.Fatalf("errors.As found no *Error in %v", err)
	}
	if decoded.Code != codes.FailedPrecondition || decoded.Reason != "PROTECTED_ALIAS_VERSION_NOT_APPROVED" ||
		decoded.Domain != ErrorDomain || decoded.Metadata["alias"] != "production" {
		t.Fatalf("decoded %+v", decoded)
	}
	if len(decoded.FieldViolations) != 1 || decoded.FieldViolations[0].Field != "model_version" {
		t.Fatalf("field violations %+v", decoded.FieldViolations)
	}
	if Reason(err) != "PROTECTED_ALIAS_VERSION_NOT_APPROVED" || Code(err) != codes.FailedPrecondition {
		t.Fatalf("Reason/Code: %q %v", Reason(err), Code(err))
	}
	if status.Code(decoded) != codes.FailedPrecondition {
		t.Fatalf("status.Code of a decoded error: %v", status.Code(decoded))
	}
}

func TestErrorsIsMatchesCodeAndReason(t *testing.T) {
	err := FromStatus(refusal(t))
	if !errors.Is(err, ErrFailedPrecondition) || errors.Is(err, ErrNotFound) {
		t.Fatal("errors.Is by code")
	}
	if !errors.Is(err, &Error{Reason: "PROTECTED_ALIAS_VERSION_NOT_APPROVED"}) || errors.Is(err, &Error{Reason: "OTHER"}) {
		t.Fatal("errors.Is by reason")
	}
	if errors.Is(err, &Error{}) {
		t.Fatal("an empty template matches nothing")
	}
}

func TestFromStatusLeavesOtherErrorsAlone(t *testing.T) {
	plain := errors.New("disk full")
	if FromStatus(plain) != plain || FromStatus(nil) != nil {
		t.Fatal("non-status errors pass through")
	}
	if Code(nil) != codes.OK || Code(plain) != codes.Unknown {
		t.Fatal("Code of nil / plain errors")
	}
	if CodeName(codes.FailedPrecondition) != "FAILED_PRECONDITION" || CodeName(codes.Canceled) != "CANCELLED" {
		t.Fatal("CodeName spells codes as the gRPC spec does")
	}
}
