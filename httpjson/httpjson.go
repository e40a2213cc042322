// Package httpjson holds what genpipe's HTTP services share: JSON answers,
// RFC 9457 problem details for errors, and strict, size-limited JSON
// request bodies whose failures are genpipe errors a client can read.
package httpjson

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

import "github.com/genpipe/genpipe"

// Problem is an RFC 9457 problem detail, the body of every error answer.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"` // the genpipe error code, stable for programs
}

// statusByCode maps each genpipe error code to the HTTP status of its
// problem (see error.go in the root package).
var statusByCode = map[string]int{
	genpipe.ECONFLICT:      http.StatusConflict,
	genpipe.EINVALID:       http.StatusBadRequest,
	genpipe.ENOTFOUND:      http.StatusNotFound,
	genpipe.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	genpipe.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	genpipe.ETOOMANY:       http.StatusTooManyRequests,
	genpipe.EBUDGET:        http.StatusTooManyRequests,
	genpipe.ESTARTTOOLATE:  http.StatusTooManyRequests,
	genpipe.EUNAVAILABLE:   http.StatusServiceUnavailable,
	genpipe.EUNAUTHORIZED:  http.StatusUnauthorized,
	genpipe.EFORBIDDEN:     http.StatusForbidden,
	genpipe.EINTERNAL:      http.StatusInternalServerError,
}

// Status returns the HTTP status of an error with the genpipe code: 500
// for a code it does not know.
func Status(code string) int {
	if status, ok := statusByCode[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// Write answers v as JSON with status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteProblem answers an application/problem+json body.
func WriteProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type:   "urn:genpipe:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	})
}

// Decode reads exactly one JSON value of at most maxBytes into v. A body
// too large is ETOOLARGE; an empty, malformed or trailing-data body is
// EINVALID, with a message that says which.
func Decode(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errTrailing
			var tooLarge *http.MaxBytesError
			if errors.As(terr, &tooLarge) {
				err = terr
			}
		}
	}
	var tooLarge *http.MaxBytesError
	var broken net.Error // the read timed out, or the connection failed
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return genpipe.Errorf(genpipe.ETOOLARGE, "request body is over %d bytes", maxBytes)
	case errors.As(err, &broken):
		return genpipe.Errorf(genpipe.EINVALID, "request body did not arrive in full; send it again")
	case errors.Is(err, io.EOF):
		return genpipe.Errorf(genpipe.EINVALID, "request body is empty; send a JSON object")
	case errors.Is(err, errTrailing):
		return genpipe.Errorf(genpipe.EINVALID, "malformed JSON: trailing data after the value")
	default:
		return genpipe.Errorf(genpipe.EINVALID, "malformed JSON: %v", err)
	}
}

var errTrailing = errors.New("trailing data")

// maxRetryAfter caps a Retry-After (a day), so a silly value cannot
// overflow a time.Duration or stall a caller for longer.
const maxRetryAfter = 24 * time.Hour

// RetryAfter reads the Retry-After header of an answer: delay-seconds or
// an HTTP-date (then relative to now), at most a day. ok is false when
// there is none, or it is neither.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}
