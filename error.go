package genpipe

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to an HTTP status (httpjson.Status), which the API
// and the AI services answer with and the AI client reads back.
const (
	ECONFLICT      = "conflict"          // 409
	EINTERNAL      = "internal"          // 500
	EINVALID       = "invalid"           // 400
	ENOTFOUND      = "not_found"         // 404
	ETOOLARGE      = "too_large"         // 413
	EUNPROCESSABLE = "unprocessable"     // 422: well-formed, but refers to something unusable
	ETOOMANY       = "too_many_requests" // 429: over capacity or rate; retry later
	EUNAVAILABLE   = "unavailable"       // 503: a dependency is down; retry later
	EUNAUTHORIZED  = "unauthorized"      // 401
	EFORBIDDEN     = "forbidden"         // 403: who asked may not have this (a priority above its tenant's ceiling)
)

// Error is an error a user may see: its Message is written for them.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("genpipe error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other error, and "" for nil.
func ErrorCode(err error) string { return userError(err).Code }

// ErrorMessage returns the user-facing message of err; internal errors get
// a generic one so that no internals leak.
func ErrorMessage(err error) string { return userError(err).Message }

// userError is what a user may see of err: the first *Error in its chain,
// an internal error with a generic message for any other error, and the
// zero Error for nil.
func userError(err error) Error {
	var e *Error
	switch {
	case err == nil:
		return Error{}
	case errors.As(err, &e):
		return *e
	default:
		return Error{Code: EINTERNAL, Message: "internal error"}
	}
}
