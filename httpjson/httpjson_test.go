package httpjson_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		body, code, detail string
	}{
		{`{"a":1}`, "", ""},
		{``, genpipe.EINVALID, "empty"},
		{`{"a":`, genpipe.EINVALID, "malformed JSON"},
		{`{"a":1} {"b":2}`, genpipe.EINVALID, "trailing"},
		{`{"a":"` + strings.Repeat("x", 100) + `"}`, genpipe.ETOOLARGE, "over 64 bytes"},
		{`{"a":1}` + strings.Repeat(" ", 100), genpipe.ETOOLARGE, "over 64 bytes"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
		var v map[string]any
		err := httpjson.Decode(httptest.NewRecorder(), r, 64, &v)
		if genpipe.ErrorCode(err) != c.code || !strings.Contains(genpipe.ErrorMessage(err), c.detail) {
			t.Errorf("Decode(%.20q) = %v, want code %q with %q", c.body, err, c.code, c.detail)
		}
	}
}

func TestWriteProblem(t *testing.T) {
	w := httptest.NewRecorder()
	httpjson.WriteProblem(w, http.StatusNotFound, genpipe.ENOTFOUND, "request x not found")
	var p httpjson.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if w.Code != 404 || w.Header().Get("Content-Type") != "application/problem+json" ||
		p.Status != 404 || p.Title != "Not Found" || p.Code != genpipe.ENOTFOUND || p.Detail != "request x not found" {
		t.Fatalf("got %d %q %+v", w.Code, w.Header().Get("Content-Type"), p)
	}
}
