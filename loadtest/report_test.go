package loadtest

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// syntheticReport is a plausible article-scenario run: naive spiky and
// low with its records bunched in a few partitions, article flat at about
// a third of maxRps, genpipe near maxRps.
func syntheticReport() Report {
	rng := rand.New(rand.NewPCG(1, 2))
	const maxRps, seconds, partitions = 21.3, 90, 64
	naive := Result{Profile: "naive", Requests: 1000, Completed: 930, Lost: 70, ThroughputRps: 2.4,
		MaxRps: maxRps, Utilization: 2.4 / maxRps, P50Ms: 61000, P95Ms: 340000, P99Ms: 390000,
		PartitionMaxOverMean: 9.6, Rebalances: 14, Redeliveries: 420, DuplicateAICalls: 380}
	article := Result{Profile: "article", Requests: 1000, Completed: 1000, ThroughputRps: 7.4,
		MaxRps: maxRps, Utilization: 7.4 / maxRps, IdealUtilization: 0.995, UtilizationOfIdeal: 7.4 / maxRps / 0.995, P50Ms: 33000, P95Ms: 64000, P99Ms: 70000,
		PartitionMaxOverMean: 1.3}
	genpipe := Result{Profile: "genpipe", Requests: 1000, Completed: 1000, ThroughputRps: 20.6,
		MaxRps: maxRps, Utilization: 20.6 / maxRps, P50Ms: 9000, P95Ms: 21000, P99Ms: 23000,
		PartitionMaxOverMean: 1.3}
	for s := range seconds {
		spike := 0.0
		if s%15 < 3 {
			spike = 6 + 4*rng.Float64()
		}
		naive.CompletionsPerSecond = append(naive.CompletionsPerSecond, spike+rng.Float64())
		article.CompletionsPerSecond = append(article.CompletionsPerSecond, 7+rng.Float64())
		genpipe.CompletionsPerSecond = append(genpipe.CompletionsPerSecond, math.Min(maxRps, 19.5+2*rng.Float64()))
	}
	naive.RecordsPerPartition = make([]int64, partitions)
	for _, p := range []int{3, 17, 40, 41, 58} {
		naive.RecordsPerPartition[p] = 200
	}
	article.RecordsPerPartition = evenPartitions(rng, partitions, 1000)
	genpipe.RecordsPerPartition = evenPartitions(rng, partitions, 1000)
	naive.LatenciesMs = latencies(rng, naive.Completed, 3000, 400000)
	article.LatenciesMs = latencies(rng, article.Completed, 3000, 72000)
	genpipe.LatenciesMs = latencies(rng, genpipe.Completed, 3000, 24000)
	return Report{Scenario: "article", Shape: "burst", TimeScale: 0.01,
		StartedAt: time.Date(2026, 3, 14, 9, 26, 0, 0, time.UTC),
		Results:   []Result{naive, article, genpipe}}
}

// evenPartitions spreads total records over n partitions as keyed
// (hashed) producing does.
func evenPartitions(rng *rand.Rand, n, total int) []int64 {
	out := make([]int64, n)
	for range total {
		out[rng.IntN(n)]++
	}
	return out
}

// latencies draws n latencies between lo and hi ms, skewed towards lo.
func latencies(rng *rand.Rand, n int, lo, hi float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		u := rng.Float64()
		out[i] = lo + (hi-lo)*u*u
	}
	return out
}

// checkPNG decodes a chart PNG and checks its size and that it is not
// blank.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() < 600 || b.Dx() > 1600 || b.Dy() < 300 || b.Dy() > 2000 {
		t.Errorf("%s: size %dx%d", path, b.Dx(), b.Dy())
	}
	if n := colours(img); n < 4 {
		t.Errorf("%s: %d distinct colours, looks blank", path, n)
	}
}

// colours counts the distinct colours in img, sampling every other pixel.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

// writeCharts runs WriteCharts into a temporary directory and checks every
// file it names: PNGs decode and are not blank, other files are not empty.
func writeCharts(t *testing.T, r Report) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	names, err := WriteCharts(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 3 {
		t.Fatalf("WriteCharts returned %v, want at least three charts", names)
	}
	for _, name := range names {
		path := filepath.Join(dir, name)
		if filepath.Ext(name) == ".png" {
			checkPNG(t, path)
			continue
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", name, err)
		}
	}
	return dir, names
}

func TestWriteCharts(t *testing.T) {
	dir, names := writeCharts(t, syntheticReport())
	for _, want := range []string{"completions.png", "partitions.png", "latency.png"} {
		if !contains(names, want) {
			t.Errorf("WriteCharts returned %v, missing %s", names, want)
		}
	}
	if out := os.Getenv("LOADTEST_REPORT_DIR"); out != "" {
		copyOut(t, dir, out, names) // for looking at the charts by eye
	}
}

func TestWriteChartsEdgeCases(t *testing.T) {
	full := syntheticReport()
	single := Report{Results: full.Results[2:]}
	one := full.Results[0]
	one.CompletionsPerSecond, one.RecordsPerPartition, one.LatenciesMs = []float64{5}, []int64{7}, []float64{42}
	zero := Result{Profile: "zero", CompletionsPerSecond: []float64{0, 0}, RecordsPerPartition: []int64{0, 0},
		LatenciesMs: []float64{0, 0}, Utilization: math.NaN(), MaxRps: math.Inf(1)}
	cases := map[string]Report{
		"no results":      {},
		"single profile":  single,
		"empty series":    {Results: []Result{{Profile: "empty"}}},
		"one point each":  {Results: []Result{one}},
		"zeros":           {Results: []Result{zero}},
		"different max":   {Results: []Result{full.Results[0], withMaxRps(full.Results[1], 30)}},
		"empty and full":  {Results: []Result{{Profile: "empty"}, full.Results[2]}},
		"equal latencies": {Results: []Result{{Profile: "eq", LatenciesMs: []float64{5000, 5000, 5000}}}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) { writeCharts(t, r) })
	}
}

func TestWriteChartsCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	names, err := WriteCharts(dir, syntheticReport())
	if err != nil || len(names) == 0 {
		t.Fatalf("WriteCharts into a new dir: %v, %v", names, err)
	}
}

func withMaxRps(r Result, m float64) Result {
	r.MaxRps = m
	return r
}

func TestWriteHTML(t *testing.T) {
	r := syntheticReport()
	r.Results[1].Profile = `<script>alert("x")</script>`
	r.Scenario = `few<b>`
	charts := []string{"completions.png", "completions.svg", "partitions.png", "latency.png", "odd name&.png"}
	var b bytes.Buffer
	if err := WriteHTML(&b, r, charts); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "</html>", `src="completions.png"`, `href="completions.svg"`,
		`src="partitions.png"`, `src="latency.png"`, `src="odd%20name&amp;.png"`, "naive", "genpipe",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "few&lt;b&gt;", "2026-03-14", "measured", "unscaled",
		"ideal utilization", "utilization / ideal", "zero-overhead"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>", "few<b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("HTML contains unescaped %q", bad)
		}
	}
	// naive lost records and called the AI twice: both cells are red;
	// genpipe's zeros are not.
	if got := strings.Count(page, `<td class="bad">`); got != 2 {
		t.Errorf("%d highlighted cells, want 2 (naive's lost and duplicate AI calls)", got)
	}
	if out := os.Getenv("LOADTEST_REPORT_DIR"); out != "" {
		if err := os.WriteFile(filepath.Join(out, "escaped.html"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteHTMLEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(&b, Report{}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "no results") || !strings.Contains(b.String(), "date unknown") {
		t.Errorf("empty report: %s", b.String())
	}
}

func TestWriteHTMLWithCharts(t *testing.T) {
	r := syntheticReport()
	dir, names := writeCharts(t, r)
	var b bytes.Buffer
	if err := WriteHTML(&b, r, names); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !strings.Contains(b.String(), `"`+name+`"`) {
			t.Errorf("HTML does not reference %s", name)
		}
	}
	if out := os.Getenv("LOADTEST_REPORT_DIR"); out != "" {
		copyOut(t, dir, out, names)
		if err := os.WriteFile(filepath.Join(out, "report.html"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteTable(t *testing.T) {
	r := syntheticReport()
	r.Results[0].Profile = "na\nive"
	r.Results[2].Utilization = math.NaN()
	var b bytes.Buffer
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 1+len(r.Results) {
		t.Fatalf("%d lines, want header + %d:\n%s", len(lines), len(r.Results), b.String())
	}
	for _, h := range []string{"profile", "requests", "completed", "lost", "rps", "max-rps", "util", "ideal-util", "util/ideal",
		"p50-ms", "p95-ms", "p99-ms", "part-max/mean", "rebalances", "redeliveries", "dup-ai-calls"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("header lacks %q: %s", h, lines[0])
		}
	}
	width := len([]rune(lines[0]))
	for i, l := range lines {
		if len([]rune(l)) != width {
			t.Errorf("line %d is %d runes wide, header %d:\n%s", i, len([]rune(l)), width, b.String())
		}
	}
	if !strings.Contains(lines[1], "380") || !strings.Contains(lines[2], "34.7%") || !strings.Contains(lines[3], "–") {
		t.Errorf("unexpected rows:\n%s", b.String())
	}
	// The ideal and the ratio sit next to the measured figure.
	if !strings.Contains(strings.Join(strings.Fields(lines[2]), " "), "34.7% 99.5% 0.349") {
		t.Errorf("article's row lacks utilization, ideal and ratio side by side:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
}

func TestWriteTableEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, Report{}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 1 {
		t.Errorf("%d lines for no results, want the header only", n)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// copyOut copies the charts to out so they can be looked at.
func copyOut(t *testing.T, dir, out string, names []string) {
	t.Helper()
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			err = os.WriteFile(filepath.Join(out, name), data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
