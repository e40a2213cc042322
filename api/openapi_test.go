package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/internal/contract"
	"github.com/genpipe/genpipe/internal/testenv"
)

// GET /openapi.json serves the description kept in the repository, and a
// server with every optional endpoint on routes every operation it lists:
// none answers "no such endpoint" or 405. (That the answers match the
// description is checked on every exchange, by the transport TestMain
// installs.)
func TestOpenAPIServedAndEveryOperationRouted(t *testing.T) {
	f := newFixtureOn(t, func(s *testenv.StatusStore) []api.Option {
		return []api.Option{api.WithLedger(s, nil), api.WithMetricsHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			io.WriteString(w, "# no metrics\n")
		}))}
	})
	resp, err := http.Get(f.server.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(served, api.OpenAPI()) {
		t.Fatalf("GET /openapi.json: %s %q, %d bytes; want the %d bytes of api/openapi.json", resp.Status, resp.Header.Get("Content-Type"), len(served), len(api.OpenAPI()))
	}

	doc, err := contract.Load()
	if err != nil {
		t.Fatal(err)
	}
	const someID = "0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a"
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			url := f.server.URL + strings.ReplaceAll(path, "{id}", someID)
			body := io.Reader(nil)
			if method == http.MethodPost {
				body = strings.NewReader("{}")
			}
			req, _ := http.NewRequest(method, url, body)
			req.Header.Set("Content-Type", "application/json")
			// Not through http.DefaultClient: {} is no valid body, and what
			// matters here is only whether the route exists.
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusMethodNotAllowed || (resp.Header.Get("Content-Type") == "application/problem+json" && bytes.Contains(answer, []byte("no such endpoint"))) {
				t.Errorf("%s %s is described but not served: %s %s", method, path, resp.Status, answer)
			}
		}
	}
}

// The description's bound on a result's PNG links is genpipe.MaxSlides,
// one link a slide: the two are written apart and must agree.
func TestOpenAPIBoundsLinksBySlides(t *testing.T) {
	doc, err := contract.Load()
	if err != nil {
		t.Fatal(err)
	}
	result := doc.Components.Schemas["Result"]
	if result == nil || result.Value.Properties["pngUrls"] == nil {
		t.Fatal("components.schemas.Result.pngUrls is not described")
	}
	if got := result.Value.Properties["pngUrls"].Value.MaxItems; got == nil || *got != genpipe.MaxSlides {
		t.Errorf("Result.pngUrls maxItems = %v; want genpipe.MaxSlides (%d)", got, genpipe.MaxSlides)
	}
}
