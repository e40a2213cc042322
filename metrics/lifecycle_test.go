package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/metrics"
)

func TestLifecycleCounters(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	r.RequestCanceled("acme")
	r.RequestCanceled("acme")
	r.RequestExpired("")
	w := httptest.NewRecorder()
	r.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(w.Body)
	for _, want := range []string{`genpipe_requests_canceled_total{tenant="acme"} 2`, `genpipe_requests_expired_total{tenant="default"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}
