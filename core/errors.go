package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"gorm.io/gorm"

	"gatehouse/db"
)

// Code is a gatehouse status code. Its numeric values are Leosac's APIStatusCode values, so a
// Code is sent as is in the Leosac dialect's status_code field; HTTPStatus maps it for the HTTP
// dialects. The mapping from Go errors to a Code happens once, in StatusOf.
type Code int

// The status codes of the Leosac dialect (reference leosac.md §1.4), in their wire values.
const (
	Success          Code = 0
	GeneralFailure   Code = 1
	PermissionDenied Code = 2
	RateLimited      Code = 3
	Malformed        Code = 4
	InvalidCall      Code = 5
	Timeout          Code = 6
	SessionAborted   Code = 7
	EntityNotFound   Code = 8
	DatabaseError    Code = 9
	Unknown          Code = 10
	ModelException   Code = 11
	InvalidArgument  Code = 12
)

var codeNames = [...]string{
	"SUCCESS", "GENERAL_FAILURE", "PERMISSION_DENIED", "RATE_LIMITED", "MALFORMED", "INVALID_CALL",
	"TIMEOUT", "SESSION_ABORTED", "ENTITY_NOT_FOUND", "DATABASE_ERROR", "UNKNOWN", "MODEL_EXCEPTION",
	"INVALID_ARGUMENT",
}

// String returns the Leosac name of the code, e.g. "PERMISSION_DENIED".
func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", int(c))
}

// HTTPStatus returns the HTTP status the HTTP dialects answer for the code.
func (c Code) HTTPStatus() int {
	switch c {
	case Success:
		return http.StatusOK
	case PermissionDenied:
		return http.StatusForbidden
	case RateLimited:
		return http.StatusTooManyRequests
	case Malformed, InvalidArgument, ModelException:
		return http.StatusBadRequest
	case InvalidCall, EntityNotFound:
		return http.StatusNotFound
	case Timeout:
		return http.StatusGatewayTimeout
	case SessionAborted:
		return http.StatusUnauthorized
	default:
		return http.StatusInternalServerError
	}
}

// Error is an error that carries the status code the client is answered with. Msg is shown to
// the client as status_string; Err, if any, is the internal cause and is only logged. Content,
// if not nil, is sent as the reply content (ENTITY_NOT_FOUND and MODEL_EXCEPTION carry one).
type Error struct {
	Code    Code
	Msg     string
	Content any
	Err     error
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// E returns an *Error with the given code, client message and optional internal cause.
func E(code Code, msg string, cause error) *Error {
	return &Error{Code: code, Msg: msg, Err: cause}
}

// Errorf returns an *Error with the given code and a formatted client message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ErrPermissionDenied is the error answered when a caller lacks the right to a call.
var ErrPermissionDenied = E(PermissionDenied, "Permission denied.", nil)

// NotFound returns the ENTITY_NOT_FOUND error for an entity type and id, with the content Leosac
// clients expect: {"entity_id": "<id as string>", "entity_type": "<type>"}.
func NotFound(entityType string, id any) *Error {
	idStr := fmt.Sprint(id)
	return &Error{
		Code:    EntityNotFound,
		Msg:     fmt.Sprintf("Cannot find `%s` with id `%s`.", entityType, idStr),
		Content: map[string]string{"entity_id": idStr, "entity_type": entityType},
	}
}

// FieldError is one validation error of a MODEL_EXCEPTION: a human message and the JSON pointer
// (without leading slash, e.g. "data/attributes/name"; "" for a global error) of the field.
type FieldError struct {
	Detail  string
	Pointer string
}

// Validation returns the MODEL_EXCEPTION error for the given field errors, with the content
// {"errors": [{"detail": ..., "source": {"pointer": ...}}]}.
func Validation(errs ...FieldError) *Error {
	type source struct {
		Pointer string `json:"pointer"`
	}
	type item struct {
		Detail string `json:"detail"`
		Source source `json:"source"`
	}
	items := make([]item, 0, len(errs))
	msg := "ModelException"
	for _, fe := range errs {
		items = append(items, item{Detail: fe.Detail, Source: source{Pointer: fe.Pointer}})
		msg += ": " + fe.Detail
	}
	return &Error{Code: ModelException, Msg: msg, Content: map[string]any{"errors": items}}
}

// StatusOf maps any error to the *Error the client is answered with. *Error values pass
// through; context errors become TIMEOUT; GORM's not-found, duplicate-key and foreign-key errors
// become ENTITY_NOT_FOUND and INVALID_ARGUMENT; every other error becomes a GENERAL_FAILURE whose
// message is only a short random id, which is returned as well so the caller can log the cause
// under the same id. The internal text of unknown errors never reaches a client.
func StatusOf(err error) (e *Error, incidentID string) {
	if err == nil {
		return nil, ""
	}
	var ce *Error
	switch {
	case errors.As(err, &ce):
		return ce, ""
	case errors.Is(err, context.DeadlineExceeded):
		return E(Timeout, "The request timed out.", err), ""
	case errors.Is(err, context.Canceled):
		return E(Timeout, "The request was cancelled.", err), ""
	case errors.Is(err, gorm.ErrRecordNotFound):
		return E(EntityNotFound, "Entity not found.", err), ""
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return E(InvalidArgument, "The value is already in use.", err), ""
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return E(InvalidArgument, "The operation refers to or is referred to by another entity.", err), ""
	case db.StorageError(err):
		// Disk full, I/O error: /healthz, the metric and the log already say so.
		id := incident()
		return E(DatabaseError, "The database cannot store data right now (incident "+id+").", err), id
	}
	id := incident()
	return E(GeneralFailure, "Internal error (incident "+id+").", err), id
}

// incident returns a short random id that ties a client-visible error to a log line.
func incident() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
