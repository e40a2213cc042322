package aisim

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// problem writes err as application/problem+json. Error details never hold
// URLs, so presigned signatures do not travel back to users.
func (s *Service) problem(w http.ResponseWriter, r *http.Request, err error) {
	code := genpipe.ErrorCode(err)
	status := httpjson.Status(code)
	if code == genpipe.EUNAVAILABLE {
		status = http.StatusBadGateway // a presigned URL failed, not this service
	}
	if status >= 500 {
		s.cfg.logger.Warn("call failed", "model", s.model.name, "path", r.URL.Path, "status", status, "err", err)
	}
	httpjson.WriteProblem(w, status, code, genpipe.ErrorMessage(err))
}

func errTooMany(model string, capacity int) error {
	return genpipe.Errorf(genpipe.ETOOMANY, "the %s service is at capacity (%d calls in flight); retry later", model, capacity)
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
