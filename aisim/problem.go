package aisim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/genpipe/genpipe"
)

// Problem is an RFC 9457 problem detail, the body of every error answer.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// statusByCode maps the genpipe code of a call's error to its HTTP status.
var statusByCode = map[string]int{
	genpipe.EINVALID:       http.StatusBadRequest,
	genpipe.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	genpipe.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	genpipe.ETOOMANY:       http.StatusTooManyRequests,
	genpipe.EUNAVAILABLE:   http.StatusBadGateway, // a presigned URL failed, not this service
}

// problem writes err as application/problem+json. Error details never hold
// URLs, so presigned signatures do not travel back to users.
func (s *Service) problem(w http.ResponseWriter, r *http.Request, err error) {
	code := genpipe.ErrorCode(err)
	status, ok := statusByCode[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		s.cfg.logger.Warn("call failed", "model", s.model.name, "path", r.URL.Path, "status", status, "err", err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type:   "urn:genpipe:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: genpipe.ErrorMessage(err),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func errTooMany(model string, capacity int) error {
	return genpipe.Errorf(genpipe.ETOOMANY, "the %s service is at capacity (%d calls in flight); retry later", model, capacity)
}

// decodeBody reads one JSON value of at most MaxBodyBytes into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return genpipe.Errorf(genpipe.ETOOLARGE, "the request body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return genpipe.Errorf(genpipe.EINVALID, "the request body is empty")
	case err != nil:
		return genpipe.Errorf(genpipe.EINVALID, "the request body is not valid JSON: %v", err)
	}
	return nil
}

// checkURL reports whether field holds an absolute http(s) URL.
func checkURL(field, raw string) error {
	if raw == "" {
		return genpipe.Errorf(genpipe.EINVALID, "%s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return genpipe.Errorf(genpipe.EINVALID, "%s is not an absolute http(s) URL", field)
	}
	return nil
}

// checkRequestID reports a missing request id: the services count calls per
// request to show any request paid for twice.
func checkRequestID(id string) error {
	if id == "" {
		return genpipe.Errorf(genpipe.EINVALID, "requestId is required")
	}
	return nil
}

// unavailable is a failure of a presigned URL: the caller may retry (with
// fresh URLs). The URL's error is unwrapped so its signature stays out of
// the message.
func unavailable(what string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("aisim: %s: %w: %w", what, genpipe.Errorf(genpipe.EUNAVAILABLE, "%s failed: %v", what, err), err)
}
