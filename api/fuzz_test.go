package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
	"github.com/genpipe/genpipe/netguard"
)

// packageDir is the working directory go test gave, read before TestMain
// starts anything.
var packageDir, _ = os.Getwd()

// FuzzValidateRequest feeds arbitrary bodies and Idempotency-Keys to what
// reads and checks POST /v1/requests. It must never panic; a refusal is a
// 4xx problem+json with a detail, never a 5xx; and what it accepts is a
// request the status stores can hold (UTF-8 without NUL) and the pipeline
// can work on, whose title and description show something and hide
// nothing (no format characters but the joiners). Host names resolve without the network: *.public to a public
// address, *.internal to a private one, anything else to nothing.
//
// The corpus in testdata/fuzz/FuzzValidateRequest runs as a test; explore
// with go test -run XXX -fuzz FuzzValidateRequest ./api/.
func FuzzValidateRequest(f *testing.F) {
	// The corpus is read relative to the working directory, which the
	// embedded object store of TestMain has moved.
	f.Chdir(packageDir)
	s, err := NewServer(nil, nil, nil, NewHub(), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		f.Fatal(err)
	}
	s.cfg.lookupNetIP = fakeLookup
	f.Add([]byte(`{"objectId":"0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a","style":"minimal","description":"A slide"}`), "")
	f.Fuzz(func(t *testing.T, body []byte, idempotencyKey string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/requests", bytes.NewReader(body))
		r.Header["Idempotency-Key"] = []string{idempotencyKey}
		w := httptest.NewRecorder()
		req, _, err := s.readRequest(w, r)
		if err != nil {
			s.problem(w, r, err)
			checkRefusal(t, w)
			return
		}
		checkAccepted(t, s, req, idempotencyKey)
	})
}

func checkRefusal(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code < 400 || w.Code > 499 {
		t.Fatalf("refused with status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("refusal Content-Type %q", ct)
	}
	var p httpjson.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code || p.Detail == "" || p.Code == "" {
		t.Fatalf("refusal body %q (%v): want a problem with status %d, a detail and a code", w.Body, err, w.Code)
	}
}

func checkAccepted(t *testing.T, s *Server, req *genpipe.Request, idempotencyKey string) {
	t.Helper()
	if u, err := uuid.Parse(req.ID); err != nil || u.Version() != 7 || u.String() != req.ID {
		t.Fatalf("request id %q is not a canonical UUIDv7", req.ID)
	}
	if !canonicalUUID(req.ObjectID) {
		t.Fatalf("accepted objectId %q", req.ObjectID)
	}
	if _, ok := genpipe.StyleByID(req.Style); !ok {
		t.Fatalf("accepted style %q", req.Style)
	}
	if req.Status != genpipe.StatusReceived || req.IdempotencyKey != idempotencyKey || len(idempotencyKey) > maxIdempotencyKey {
		t.Fatalf("accepted request %+v with Idempotency-Key %q", req, idempotencyKey)
	}
	for name, v := range map[string]string{"title": req.Title, "description": req.Description,
		"webhookUrl": req.WebhookURL, "Idempotency-Key": req.IdempotencyKey} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			t.Fatalf("accepted %s %q: not storable text", name, v)
		}
	}
	for name, v := range map[string]string{"title": req.Title, "description": req.Description} {
		if !hasVisible(v) || formatChar(v) >= 0 {
			t.Fatalf("accepted %s %q: invisible, or with a format character", name, v)
		}
	}
	if req.Title == "" || req.Description == "" || utf8.RuneCountInString(req.Title) > s.cfg.maxTitleLen ||
		utf8.RuneCountInString(req.Description) > s.cfg.maxDescLen {
		t.Fatalf("accepted title %q, description %q", req.Title, req.Description)
	}
	if req.WebhookURL != "" {
		u, err := parseWebhookURL(req.WebhookURL)
		if err != nil || !strings.HasSuffix(u.Hostname(), ".public") && !publicLiteral(u.Hostname()) {
			t.Fatalf("accepted webhookUrl %q (%v)", req.WebhookURL, err)
		}
	}
}

func publicLiteral(host string) bool {
	addr, err := netip.ParseAddr(host)
	return err == nil && netguard.Kind(addr) == ""
}

func fakeLookup(_ context.Context, host string) ([]netip.Addr, error) {
	switch {
	case strings.HasSuffix(host, ".public"):
		return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("2606:2800:21f:cb07:6820:80da:af6b:8b2c")}, nil
	case strings.HasSuffix(host, ".internal"):
		return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.7")}, nil
	default:
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
}
