package api

import (
	"encoding/json"
	"net/http"

	"github.com/genpipe/genpipe"
)

// Problem is an RFC 9457 problem detail, the body of every API error.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"` // the genpipe error code, stable for programs
}

var statusByCode = map[string]int{
	genpipe.ECONFLICT:      http.StatusConflict,
	genpipe.EINVALID:       http.StatusBadRequest,
	genpipe.ENOTFOUND:      http.StatusNotFound,
	genpipe.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	genpipe.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	genpipe.ETOOMANY:       http.StatusTooManyRequests,
	genpipe.EUNAVAILABLE:   http.StatusServiceUnavailable,
	genpipe.EUNAUTHORIZED:  http.StatusUnauthorized,
	genpipe.EINTERNAL:      http.StatusInternalServerError,
}

// problem writes err as application/problem+json. Internal errors are
// logged with their detail and shown to the client without it.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	code := genpipe.ErrorCode(err)
	status, ok := statusByCode[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		s.cfg.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "2")
	}
	writeProblem(w, status, code, genpipe.ErrorMessage(err))
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
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
