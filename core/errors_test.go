package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"gorm.io/gorm"
)

func TestStatusOf(t *testing.T) {
	own := E(PermissionDenied, "Permission denied.", errors.New("rank too low"))
	tests := []struct {
		name     string
		err      error
		wantCode Code
		wantMsg  string
		same     *Error // the exact *Error expected to pass through
	}{
		{"core error", own, PermissionDenied, "Permission denied.", own},
		{"wrapped core error", fmt.Errorf("open door 7: %w", own), PermissionDenied, "Permission denied.", own},
		{"doubly wrapped", fmt.Errorf("a: %w", fmt.Errorf("b: %w", own)), PermissionDenied, "Permission denied.", own},
		{"joined", errors.Join(errors.New("x"), own), PermissionDenied, "Permission denied.", own},
		{"core error wrapping deadline", E(RateLimited, "Slow down.", context.DeadlineExceeded), RateLimited, "Slow down.", nil},
		{"deadline", context.DeadlineExceeded, Timeout, "The request timed out.", nil},
		{"wrapped deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), Timeout, "The request timed out.", nil},
		{"record not found", gorm.ErrRecordNotFound, EntityNotFound, "Entity not found.", nil},
		{"wrapped not found", fmt.Errorf("load user: %w", gorm.ErrRecordNotFound), EntityNotFound, "Entity not found.", nil},
		{"duplicate key", gorm.ErrDuplicatedKey, InvalidArgument, "The value is already in use.", nil},
		{"wrapped duplicate key", fmt.Errorf("create: %w", gorm.ErrDuplicatedKey), InvalidArgument, "The value is already in use.", nil},
		{"foreign key", gorm.ErrForeignKeyViolated, InvalidArgument, "The operation refers to or is referred to by another entity.", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, id := StatusOf(tc.err)
			if got == nil {
				t.Fatal("StatusOf returned nil")
			}
			if got.Code != tc.wantCode || got.Msg != tc.wantMsg {
				t.Errorf("StatusOf = %v %q, want %v %q", got.Code, got.Msg, tc.wantCode, tc.wantMsg)
			}
			if tc.same != nil && got != tc.same {
				t.Errorf("StatusOf did not pass the *Error through unchanged")
			}
			if id != "" {
				t.Errorf("incident id %q for a known error", id)
			}
			if tc.same == nil && !errors.Is(got, tc.err) && got.Err != tc.err {
				t.Errorf("the cause is not kept for the log")
			}
		})
	}
	if got, id := StatusOf(nil); got != nil || id != "" {
		t.Errorf("StatusOf(nil) = %v, %q", got, id)
	}
}

func TestStatusOfUnknownErrorHidesText(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.7:5432: password authentication failed for user admin")
	got, id := StatusOf(fmt.Errorf("load: %w", secret))
	if got.Code != GeneralFailure {
		t.Errorf("Code = %v, want GENERAL_FAILURE", got.Code)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("incident id %q, want 12 hex digits", id)
	}
	if !strings.Contains(got.Msg, id) {
		t.Errorf("message %q does not carry the incident id %q", got.Msg, id)
	}
	for _, leak := range []string{"10.0.0.7", "password", "admin", "load"} {
		if strings.Contains(got.Msg, leak) {
			t.Errorf("client message %q leaks %q", got.Msg, leak)
		}
	}
	if !errors.Is(got, secret) {
		t.Error("the internal cause is not kept for the log")
	}
	_, id2 := StatusOf(secret)
	if id2 == id {
		t.Error("two incidents got the same id")
	}
}

func TestStatusOfCanceled(t *testing.T) {
	got, id := StatusOf(context.Canceled)
	if got.Code != Timeout || id != "" {
		t.Errorf("StatusOf(context.Canceled) = %v (incident %q), want TIMEOUT as documented", got.Code, id)
	}
}

func TestCodeHTTPStatus(t *testing.T) {
	tests := []struct {
		code Code
		want int
		name string
	}{
		{Success, http.StatusOK, "SUCCESS"},
		{GeneralFailure, http.StatusInternalServerError, "GENERAL_FAILURE"},
		{PermissionDenied, http.StatusForbidden, "PERMISSION_DENIED"},
		{RateLimited, http.StatusTooManyRequests, "RATE_LIMITED"},
		{Malformed, http.StatusBadRequest, "MALFORMED"},
		{InvalidCall, http.StatusNotFound, "INVALID_CALL"},
		{Timeout, http.StatusGatewayTimeout, "TIMEOUT"},
		{SessionAborted, http.StatusUnauthorized, "SESSION_ABORTED"},
		{EntityNotFound, http.StatusNotFound, "ENTITY_NOT_FOUND"},
		{DatabaseError, http.StatusInternalServerError, "DATABASE_ERROR"},
		{Unknown, http.StatusInternalServerError, "UNKNOWN"},
		{ModelException, http.StatusBadRequest, "MODEL_EXCEPTION"},
		{InvalidArgument, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{Code(99), http.StatusInternalServerError, "CODE_99"},
		{Code(-1), http.StatusInternalServerError, "CODE_-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.code.HTTPStatus(); got != tc.want {
				t.Errorf("%v.HTTPStatus() = %d, want %d", tc.code, got, tc.want)
			}
			if got := tc.code.String(); got != tc.name {
				t.Errorf("Code(%d).String() = %q, want %q", int(tc.code), got, tc.name)
			}
		})
	}
	// The wire values are Leosac's.
	for code, want := range map[Code]int{Success: 0, GeneralFailure: 1, SessionAborted: 7, EntityNotFound: 8, InvalidArgument: 12} {
		if int(code) != want {
			t.Errorf("%v = %d, want %d", code, int(code), want)
		}
	}
}

func TestErrorMethods(t *testing.T) {
	cause := errors.New("disk full")
	e := E(DatabaseError, "Database error.", cause)
	if e.Error() != "Database error.: disk full" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !errors.Is(e, cause) || e.Unwrap() != cause {
		t.Error("Unwrap does not return the cause")
	}
	if got := Errorf(InvalidArgument, "bad %s %d", "door", 7); got.Msg != "bad door 7" || got.Err != nil || got.Error() != "bad door 7" {
		t.Errorf("Errorf = %+v", got)
	}
	if ErrPermissionDenied.Code != PermissionDenied {
		t.Error("ErrPermissionDenied has the wrong code")
	}
}

func TestNotFound(t *testing.T) {
	e := NotFound("user", int64(42))
	if e.Code != EntityNotFound {
		t.Errorf("Code = %v", e.Code)
	}
	if e.Msg != "Cannot find `user` with id `42`." {
		t.Errorf("Msg = %q", e.Msg)
	}
	b, err := json.Marshal(e.Content)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"entity_id":"42","entity_type":"user"}`; string(b) != want {
		t.Errorf("content = %s, want %s", b, want)
	}
	got, _ := StatusOf(fmt.Errorf("wrapped: %w", e))
	if got != e {
		t.Error("NotFound does not pass through StatusOf")
	}
}

func TestValidation(t *testing.T) {
	e := Validation(
		FieldError{Detail: "Username is too short.", Pointer: "data/attributes/username"},
		FieldError{Detail: "Something is off."},
	)
	if e.Code != ModelException {
		t.Errorf("Code = %v", e.Code)
	}
	if e.Msg != "ModelException: Username is too short.: Something is off." {
		t.Errorf("Msg = %q", e.Msg)
	}
	b, err := json.Marshal(e.Content)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"errors":[{"detail":"Username is too short.","source":{"pointer":"data/attributes/username"}},` +
		`{"detail":"Something is off.","source":{"pointer":""}}]}`
	if string(b) != want {
		t.Errorf("content =\n%s\nwant\n%s", b, want)
	}

	empty, err := json.Marshal(Validation().Content)
	if err != nil {
		t.Fatal(err)
	}
	if string(empty) != `{"errors":[]}` {
		t.Errorf("empty content = %s, want {\"errors\":[]}", empty)
	}
}

// sqliteErr is an error with a SQLite result code, as the driver returns them.
type sqliteErr int

func (e sqliteErr) Error() string { return fmt.Sprintf("sqlite error (%d)", int(e)) }
func (e sqliteErr) Code() int     { return int(e) }

func TestStatusOfStorageError(t *testing.T) {
	full := fmt.Errorf("create user: %w", sqliteErr(13)) // SQLITE_FULL
	e, id := StatusOf(full)
	if e.Code != DatabaseError || id == "" || !strings.Contains(e.Msg, id) {
		t.Errorf("disk full: %v %q, want DATABASE_ERROR with an incident id", e.Code, id)
	}
	if e, _ := StatusOf(fmt.Errorf("x: %w", sqliteErr(19))); e.Code != GeneralFailure { // a constraint is no storage error
		t.Errorf("constraint: %v, want GENERAL_FAILURE", e.Code)
	}
}
