package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// problem writes err as application/problem+json, with Retry-After on 429
// and 503 and a Bearer challenge on 401. Internal errors are logged with
// their detail and shown to the client without it.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	code := genpipe.ErrorCode(err)
	status := httpjson.Status(code)
	if status >= 500 {
		s.cfg.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		challenge := `Bearer realm="genpipe"`
		if errors.Is(err, errInvalidKey) {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	httpjson.WriteProblem(w, status, code, genpipe.ErrorMessage(err))
}
