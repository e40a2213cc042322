//go:build unix

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
)

// The Grafana dashboard (deploy/grafana/genpipe.json) and the Prometheus
// alert rules (deploy/prometheus/genpipe-rules.yml) are checked against
// the genpipe that runs: every query parses as PromQL, and every metric
// it reads is one a running genpipe serves on /metrics once it has seen
// the traffic the panels and alerts are about.

// promQuery is one PromQL expression of the deployment files, and where.
type promQuery struct {
	where string // "dashboard panel \"AI utilization\"", "alert GenpipeDeadLetters"
	expr  string
}

// grafanaVariable is a variable reference in a dashboard query: $name,
// ${name} or ${name:format}.
var grafanaVariable = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// grafanaBuiltins are the Grafana variables the dashboard may use without
// defining them, with a value that makes the query valid PromQL.
var grafanaBuiltins = map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "3h"}

type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Query      any            `json:"query"`
			Definition string         `json:"definition"`
			Datasource map[string]any `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	Panels     []grafanaPanel `json:"panels"` // a collapsed row's
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
}

// loadDashboard reads the dashboard and returns its queries with the
// variables replaced by values (the datasource variable aside), checking
// that every panel queries Prometheus through the datasource variable and
// that every variable a query uses is defined.
func loadDashboard(t *testing.T) []promQuery {
	t.Helper()
	path := filepath.Join(deployDir(t), "grafana", "genpipe.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard: uid %q title %q; want both", d.UID, d.Title)
	}
	vars := maps.Clone(grafanaBuiltins)
	datasourceVar := ""
	var queries []promQuery
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			if v.Query != "prometheus" {
				t.Errorf("dashboard variable %s: a %v data source; want prometheus", v.Name, v.Query)
			}
			datasourceVar = v.Name
		case "query":
			vars[v.Name] = ".*" // what "All" stands for
			if name, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
				metric, _, _ := strings.Cut(name, ",")
				queries = append(queries, promQuery{"dashboard variable " + v.Name, strings.TrimSpace(metric)})
			}
		default:
			vars[v.Name] = ".*"
		}
	}
	if datasourceVar == "" {
		t.Fatal("dashboard: no datasource variable; panels must not name a data source of one Grafana")
	}
	wantDS := "${" + datasourceVar + "}"
	checkDS := func(where string, ds map[string]any) {
		if ds["type"] != "prometheus" || ds["uid"] != wantDS {
			t.Errorf("%s: datasource %v; want {type: prometheus, uid: %s}", where, ds, wantDS)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			checkDS("dashboard variable "+v.Name, v.Datasource)
		}
	}
	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			if ids[p.ID] {
				t.Errorf("dashboard: panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			where := fmt.Sprintf("dashboard panel %q", p.Title)
			checkDS(where, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", where)
			}
			for _, tg := range p.Targets {
				checkDS(where+" query", tg.Datasource)
				expr := grafanaVariable.ReplaceAllStringFunc(tg.Expr, func(ref string) string {
					m := grafanaVariable.FindStringSubmatch(ref)
					name := m[1] + m[2]
					v, ok := vars[name]
					if !ok {
						t.Errorf("%s: %s uses $%s, which the dashboard does not define", where, tg.Expr, name)
					}
					return v
				})
				queries = append(queries, promQuery{where, expr})
			}
		}
	}
	walk(d.Panels)
	return queries
}

// alertRules is the part of a Prometheus rules file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// rulesFile is the alert rules' path.
func rulesFile(t *testing.T) string {
	return filepath.Join(deployDir(t), "prometheus", "genpipe-rules.yml")
}

// loadRules reads the alert rules and returns their expressions, checking
// what an operator woken by one needs: a severity, a summary, a
// description, and a runbook section of docs/operations.md named after
// the alert.
func loadRules(t *testing.T) []promQuery {
	t.Helper()
	f := decodeYAML[alertRules](t, rulesFile(t))[0]
	var queries []promQuery
	seen := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" {
				where = "recording rule " + r.Record
			}
			queries = append(queries, promQuery{where, r.Expr})
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("%s twice", where)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q; want critical or warning", where, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s", where, a)
				}
			}
			if want := "docs/operations.md#" + strings.ToLower(r.Alert); r.Annotations["runbook"] != want {
				t.Errorf("%s: runbook %q; want %q (a section of docs/operations.md named after the alert)", where, r.Annotations["runbook"], want)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no alert rules")
	}
	return queries
}

// prometheusMade are the series Prometheus adds to what it scrapes, which
// no /metrics serves.
var prometheusMade = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// metricNames parses q and returns the metric names it reads; a selector
// without one is an error, since nothing could check what it reads.
func metricNames(q promQuery) ([]string, error) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", q.where, q.expr, err)
	}
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
			if vs.Name == "" {
				err = fmt.Errorf("%s: selector %s names no metric", q.where, vs)
			}
		}
		return nil
	})
	return names, err
}

// TestMonitoringQueriesParse parses every query of the dashboard and the
// alert rules as PromQL, with the parser Prometheus itself uses, and
// checks that the dashboard shows, and the rules watch, what an operator
// of genpipe needs.
func TestMonitoringQueriesParse(t *testing.T) {
	dashboard, rules := loadDashboard(t), loadRules(t)
	shown := map[string]bool{}
	n := 0
	for _, q := range append(dashboard, rules...) {
		names, err := metricNames(q)
		if err != nil {
			t.Error(err)
		}
		n += len(names)
		if strings.HasPrefix(q.where, "dashboard") {
			for _, name := range names {
				shown[name] = true
			}
		}
	}
	t.Logf("%d queries reading %d metric selectors", len(dashboard)+len(rules), n)
	for _, want := range []string{
		"genpipe_stage_utilization_ratio", "genpipe_stage_in_flight", "genpipe_stage_limit", // AI utilization
		"genpipe_consumer_lag_records", "genpipe_tenant_waiting_requests", // backlog
		"genpipe_request_duration_seconds_bucket", "genpipe_stage_processing_seconds_bucket", // latency percentiles
		"genpipe_ai_retries_total", "genpipe_dead_letters_total", "genpipe_consumer_rebalances_total",
		"genpipe_webhook_attempts_total", "genpipe_budget_refused_total", "genpipe_requests_canceled_total",
		"genpipe_requests_expired_total", "genpipe_estimate_error_seconds_bucket",
	} {
		if !shown[want] {
			t.Errorf("no dashboard panel shows %s", want)
		}
	}
	alerts := map[string]bool{}
	for _, q := range rules {
		alerts[strings.TrimPrefix(q.where, "alert ")] = true
	}
	for _, want := range []string{"GenpipeConsumerLagGrowing", "GenpipeQueueGrowing", "GenpipeAIIdleWhileWorkWaits",
		"GenpipeDeadLetters", "GenpipeWebhookFailures", "GenpipeNoConsumers"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestMonitoringMetricsExist runs `genpipe up` as a process with two
// tenants, one of them on a budget, and the traffic the panels and alerts
// are about: a request that expires, requests done (one with a webhook its
// receiver refuses), one canceled, a poison record dead-lettered, a
// request refused by its tenant's budget. Then every metric the dashboard
// and the rules read must be on its /metrics.
func TestMonitoringMetricsExist(t *testing.T) {
	used := map[string][]string{} // metric -> where
	for _, q := range append(loadDashboard(t), loadRules(t)...) {
		names, err := metricNames(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if !prometheusMade[name] && !slices.Contains(used[name], q.where) {
				used[name] = append(used[name], q.where)
			}
		}
	}

	s := newStandalone(t)
	keyA, keyMetered := "watched-key-"+uuid.NewString(), "metered-key-"+uuid.NewString()
	hash := func(key string) string {
		sum := sha256.Sum256([]byte(key))
		return hex.EncodeToString(sum[:])
	}
	tenants := filepath.Join(s.dir, "tenants.yaml")
	file := fmt.Sprintf("tenants:\n  - name: acme\n    keySha256: [%s]\n"+
		"  - name: metered\n    keySha256: [%s]\n    budgets: [{stage: check, calls: 1}]\n", hash(keyA), hash(keyMetered))
	if err := os.WriteFile(tenants, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	up := s.start("up", nil, s.upArgs("--partitions", "2", "--tenants", tenants, "--kafka-port", strconv.Itoa(s.brokerPort),
		"--check-latency", "100ms", "--generate-latency", "100ms")...)
	s.waitReady(up)
	monitoringTraffic(t, s, keyA, keyMetered)

	served := map[string]bool{}
	var missing []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		for series := range scrapeMetrics(t, s.api+"/metrics") {
			name, _, _ := strings.Cut(series, "{")
			served[name] = true
		}
		missing = missing[:0]
		for name := range used {
			if !served[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(missing)
	for _, name := range missing {
		t.Errorf("%s is not on genpipe's /metrics; used by %s", name, strings.Join(used[name], ", "))
	}
	t.Logf("%d metrics used by the dashboard and the rules, %d of them served", len(used), len(used)-len(missing))
}

// monitoringTraffic makes the events the dashboard and the alerts count,
// on a system that has not measured its AIs yet (so the first request is
// given no estimate to refuse it by).
func monitoringTraffic(t *testing.T, s *standalone, key, meteredKey string) {
	t.Helper()
	refused := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) }))
	// extra's fields are added to the request's after the upload.
	submit := func(key string, extra func() map[string]any) (string, *http.Response) {
		t.Helper()
		body := map[string]any{"objectId": s.uploadAs(key, pngImage(t, 160, 100)), "style": "forest", "description": "watched"}
		if extra != nil {
			maps.Copy(body, extra())
		}
		var a map[string]any // a 202's or a problem
		resp := s.callAs(key, "POST", "/v1/requests", body, &a)
		id, _ := a["id"].(string)
		return id, resp
	}
	mustSubmit := func(extra func() map[string]any) string {
		t.Helper()
		id, resp := submit(key, extra)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/requests: %s", resp.Status)
		}
		return id
	}
	waitStatus := func(id string, want string) {
		t.Helper()
		for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
			var v requestView
			if resp := s.callAs(key, "GET", "/v1/requests/"+id, nil, &v); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET request %s: %s", id, resp.Status)
			}
			if v.Status == want {
				return
			}
			if genpipe.Status(v.Status).Terminal() || time.Since(start) > 30*time.Second {
				t.Fatalf("request %s is %s (%s), want %s", id, v.Status, v.Error, want)
			}
		}
	}

	// Its startBy passes before its generate call can start: that comes
	// after a check call that alone takes longer.
	waitStatus(mustSubmit(func() map[string]any {
		return map[string]any{"startBy": time.Now().Add(20 * time.Millisecond).UTC().Format(time.RFC3339Nano)}
	}), "expired")
	// The first request done measures the AIs; the second is given an
	// estimated start, and a webhook its receiver refuses.
	waitStatus(mustSubmit(nil), "done")
	waitStatus(mustSubmit(func() map[string]any { return map[string]any{"webhookUrl": refused + "/hook"} }), "done")
	// A cancel loses to a request that ended first (409): try again.
	for i := 0; ; i++ {
		resp := s.callAs(key, "DELETE", "/v1/requests/"+mustSubmit(nil), nil, nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if i == 4 || resp.StatusCode != http.StatusConflict {
			t.Fatalf("DELETE of a request just submitted: %s", resp.Status)
		}
	}
	p := testenv.NewProducer(t, []string{s.brokerAddr()})
	if err := p.Publish(t.Context(), genpipe.DefaultTopics().Requests, "poison-"+uuid.NewString(), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	// The budget allows one check call: the second request is refused at
	// submit (the first's call is reserved, or made).
	for i, want := range []int{http.StatusAccepted, http.StatusTooManyRequests} {
		if _, resp := submit(meteredKey, nil); resp.StatusCode != want {
			t.Fatalf("metered request %d: %s; want %d", i+1, resp.Status, want)
		}
	}
}

// TestAlertRulesPromtool runs Prometheus' own checks on the rules: promtool
// check rules, and promtool test rules on their unit tests. promtool comes
// with Debian's prometheus package (scripts/test.sh installs it as root);
// without it the test skips, unless GENPIPE_REQUIRE_PROMTOOL=1.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("GENPIPE_REQUIRE_PROMTOOL") == "1" {
			t.Fatal("promtool is not on PATH and GENPIPE_REQUIRE_PROMTOOL=1: apt-get install prometheus")
		}
		t.Skip("promtool is not on PATH (apt-get install prometheus): the rules are not checked by Prometheus itself")
	}
	dir := filepath.Dir(rulesFile(t))
	for _, args := range [][]string{
		{"check", "rules", "genpipe-rules.yml"},
		{"test", "rules", "genpipe-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
	// The unit tests cover at least two alerts.
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "genpipe-rules.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			covered[a.Alertname] = true
		}
	}
	if len(covered) < 2 {
		t.Errorf("the rules' unit tests cover %v; want at least two alerts", slices.Sorted(maps.Keys(covered)))
	}
}

// TestAlertRunbooksDocumented checks that every alert's runbook section is
// in docs/operations.md: a heading named after the alert, whose GitHub
// anchor is the alert's name in lower case. Until the section exists at
// all it skips, saying so.
func TestAlertRunbooksDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(packageDir(t), "..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.Lines(string(data)) {
		if heading, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && strings.HasPrefix(line, "#") {
			anchors[githubAnchor(heading)] = true
		}
	}
	var missing, found []string
	for _, g := range decodeYAML[alertRules](t, rulesFile(t))[0].Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if _, anchor, _ := strings.Cut(r.Annotations["runbook"], "#"); anchors[anchor] {
				found = append(found, r.Alert)
			} else {
				missing = append(missing, r.Alert)
			}
		}
	}
	if len(found) == 0 {
		t.Skipf("docs/operations.md has no runbook section of any alert yet (want a heading per alert: %s)", strings.Join(missing, ", "))
	}
	for _, a := range missing {
		t.Errorf("docs/operations.md has no heading %q: alert %s's runbook points there", a, a)
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading: lower case,
// punctuation dropped, spaces as hyphens.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
