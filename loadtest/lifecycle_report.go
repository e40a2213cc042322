package loadtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// LifecycleReport is one lifecycle lab run (RunLifecycle). Every figure
// is measured: statuses from the API, calls from the AI services' own
// records. Waits are unscaled (divided by TimeScale); abort times are
// not: the watch that aborts a call does not scale with the AI.
type LifecycleReport struct {
	TimeScale   float64          `json:"timeScale"`
	StartedAt   time.Time        `json:"startedAt"`
	CapacityRps float64          `json:"capacityRps"` // the AI's stated capacity, unscaled: what the loads multiply
	Lifecycle   *LifecycleResult `json:"lifecycle,omitempty"`
	Step        *StepResult      `json:"step,omitempty"`
	Overhead    *OverheadResult  `json:"overhead,omitempty"`
}

// LifecycleResult is what the lifecycle scenario measured.
type LifecycleResult struct {
	Load     float64      `json:"load"` // × the capacity
	Requests int          `json:"requests"`
	Roles    []RoleResult `json:"roles"`
	// CallsAfterCancel counts AI calls that started after a DELETE of
	// their request was answered 200; CallsAfterStartBy those that started
	// after their request's startBy. Both must be 0.
	CallsAfterCancel  int `json:"callsAfterCancel"`
	CallsAfterStartBy int `json:"callsAfterStartBy"`
	// LateMs is how long after the cancel's answer or the startBy the
	// latest of those calls started, in real milliseconds: a call claimed
	// just in time reaches the AI a moment later.
	LateMs float64 `json:"lateMs"`
	// AbortsMs are, for each call running when its request's DELETE was
	// sent, how long after the DELETE's answer the AI saw it end, in real
	// milliseconds (negative: it ended while the DELETE was being
	// answered). NotAborted counts those of them that ran to success
	// instead of being cut short: they raced the abort to their end.
	AbortsMs   []float64 `json:"abortsMs"`
	AbortP50Ms float64   `json:"abortP50Ms"`
	AbortP99Ms float64   `json:"abortP99Ms"`
	AbortMaxMs float64   `json:"abortMaxMs"`
	NotAborted int       `json:"notAborted"`
	Targets    []Target  `json:"targets"`
}

// RoleResult is the final statuses of the requests of one role.
type RoleResult struct {
	Role     string         `json:"role"`
	Requests int            `json:"requests"`
	Statuses map[string]int `json:"statuses"` // final status, or "refused: CODE" at submission
}

// StepResult is what the step scenario measured of the predicted starts.
type StepResult struct {
	Steps []float64 `json:"steps"` // × the capacity, in order
	// Samples are the predicted starts (from 202s and GETs) of requests
	// whose next call started at least MinWait later; Excluded those
	// that started sooner (not waiting: their relative error means
	// nothing) or never.
	Samples  int     `json:"samples"`
	Excluded int     `json:"excluded"`
	MinWaitS float64 `json:"minWaitSeconds"`
	// MedianRelError is the median of |actual − predicted start| over the
	// actual wait (actual start − when the prediction was read); the
	// target is under MaxEstimateError.
	MedianRelError float64 `json:"medianRelError"`
	P90RelError    float64 `json:"p90RelError"`
	MedianAbsErrS  float64 `json:"medianAbsErrorSeconds"`
	// MedianBiasS is the median of actual − predicted: positive when calls
	// start later than predicted.
	MedianBiasS float64       `json:"medianBiasSeconds"`
	MedianWaitS float64       `json:"medianWaitSeconds"`
	ByStep      []StepFigures `json:"byStep"`
	Statuses    map[string]int
	Points      []EstimatePoint `json:"points"` // predicted and actual waits, for the chart
	Targets     []Target        `json:"targets"`
}

// StepFigures are the samples of the requests submitted at one load.
type StepFigures struct {
	Load           float64 `json:"load"`
	Samples        int     `json:"samples"`
	MedianRelError float64 `json:"medianRelError"`
	MedianWaitS    float64 `json:"medianWaitSeconds"`
}

// EstimatePoint is one sample: the wait predicted and the wait it was,
// unscaled seconds.
type EstimatePoint struct {
	Load      float64 `json:"load"`
	Predicted float64 `json:"predicted"`
	Actual    float64 `json:"actual"`
}

// maxPoints bounds the points the report keeps for its chart.
const maxPoints = 5000

// judgeLifecycle measures the lifecycle from the requests and the calls
// the AIs listed.
func (l *lab) judgeLifecycle(all []*tracked, calls map[string][]Call) *LifecycleResult {
	res := &LifecycleResult{Load: l.cfg.Load, Requests: len(all)}
	byRole := map[role][]*tracked{}
	for _, t := range all {
		byRole[t.role] = append(byRole[t.role], t)
		t.mu.Lock()
		cs := calls[t.id]
		if t.id != "" && t.deleteCode == 200 {
			for _, c := range cs {
				switch {
				case c.Start.After(t.deleteAt):
					res.CallsAfterCancel++
					res.LateMs = max(res.LateMs, float64(c.Start.Sub(t.deleteAt))/float64(time.Millisecond))
				case !c.End.IsZero() && !c.End.After(t.deleteSent):
					// Ended before the cancel was sent.
				default:
					// Running when the cancel came: how long after its
					// answer it ended (negative: before the answer reached
					// the lab), cut short or not.
					end := c.End
					if end.IsZero() {
						end = time.Now() // still running at the end of the run
					}
					res.AbortsMs = append(res.AbortsMs, float64(end.Sub(t.deleteAt))/float64(time.Millisecond))
					if c.Outcome == "succeeded" {
						res.NotAborted++
					}
				}
			}
		}
		if !t.startBy.IsZero() {
			for _, c := range cs {
				if c.Start.After(t.startBy) {
					res.CallsAfterStartBy++
					res.LateMs = max(res.LateMs, float64(c.Start.Sub(t.startBy))/float64(time.Millisecond))
				}
			}
		}
		t.mu.Unlock()
	}
	for _, r := range []role{plain, cancel, deadline, abort} {
		if ts := byRole[r]; len(ts) > 0 {
			res.Roles = append(res.Roles, RoleResult{Role: r.String(), Requests: len(ts), Statuses: statusCounts(ts)})
		}
	}
	sorted := slices.Clone(res.AbortsMs)
	slices.Sort(sorted)
	res.AbortP50Ms, res.AbortP99Ms = percentile(sorted, 50), percentile(sorted, 99)
	if len(sorted) > 0 {
		res.AbortMaxMs = sorted[len(sorted)-1]
	}
	res.Targets = []Target{
		{Name: "AI calls started after a cancel or a startBy", Got: fmt.Sprintf("%d after a cancel, %d after a startBy", res.CallsAfterCancel, res.CallsAfterStartBy),
			Want: "0", Pass: res.CallsAfterCancel+res.CallsAfterStartBy == 0},
		{Name: "aborting a running call (DELETE answered → the AI's call ended)",
			Got: fmt.Sprintf("%d calls: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d of them ended by themselves first)",
				len(sorted), res.AbortP50Ms, res.AbortP99Ms, res.AbortMaxMs, res.NotAborted),
			Want: fmt.Sprintf("< %d ms each", MaxAbort.Milliseconds()),
			Pass: len(sorted) > 0 && res.AbortMaxMs < float64(MaxAbort.Milliseconds())},
	}
	return res
}

// judgeStep compares each sample's predicted start with the start of the
// request's first call at or after the sample, as the AI listed it.
func (l *lab) judgeStep(all []*tracked, calls map[string][]Call) *StepResult {
	res := &StepResult{Steps: l.cfg.Steps, MinWaitS: l.cfg.MinWait.Seconds(), Statuses: statusCounts(all)}
	var rel, abs, bias, waits []float64
	perStep := map[float64][][2]float64{} // rel error, wait
	for _, t := range all {
		t.mu.Lock()
		samples, cs := t.samples, calls[t.id]
		t.mu.Unlock()
		for _, s := range samples {
			i := slices.IndexFunc(cs, func(c Call) bool { return !c.Start.Before(s.at) })
			if i < 0 {
				res.Excluded++
				continue
			}
			actual := cs[i].Start
			wait := l.unscaled(actual.Sub(s.at)).Seconds()
			if wait < l.cfg.MinWait.Seconds() {
				res.Excluded++
				continue
			}
			errS := l.unscaled(actual.Sub(s.predicted)).Seconds()
			r := math.Abs(errS) / wait
			rel, abs, bias, waits = append(rel, r), append(abs, math.Abs(errS)), append(bias, errS), append(waits, wait)
			perStep[t.step] = append(perStep[t.step], [2]float64{r, wait})
			if len(res.Points) < maxPoints {
				res.Points = append(res.Points, EstimatePoint{Load: t.step, Predicted: l.unscaled(s.predicted.Sub(s.at)).Seconds(), Actual: wait})
			}
		}
	}
	res.Samples = len(rel)
	res.MedianRelError, res.P90RelError = median(rel), percentileOf(rel, 90)
	res.MedianAbsErrS, res.MedianBiasS, res.MedianWaitS = median(abs), median(bias), median(waits)
	for _, load := range l.cfg.Steps {
		var r, w []float64
		for _, p := range perStep[load] {
			r, w = append(r, p[0]), append(w, p[1])
		}
		res.ByStep = append(res.ByStep, StepFigures{Load: load, Samples: len(r), MedianRelError: median(r), MedianWaitS: median(w)})
	}
	res.Targets = []Target{{Name: "predicted start: median |error| / actual wait",
		Got:  fmt.Sprintf("%.1f%% over %d samples (median wait %.1f s, median |error| %.1f s)", 100*res.MedianRelError, res.Samples, res.MedianWaitS, res.MedianAbsErrS),
		Want: fmt.Sprintf("< %.0f%%", 100*MaxEstimateError), Pass: res.Samples > 0 && res.MedianRelError < MaxEstimateError}}
	return res
}

func median(xs []float64) float64 { return percentileOf(xs, 50) }

// percentileOf is the nearest-rank p-th percentile of xs, unsorted.
func percentileOf(xs []float64, p float64) float64 {
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	return percentile(sorted, p)
}

// Targets returns every target of the report, the lifecycle's first.
func (r LifecycleReport) Targets() []Target {
	var out []Target
	if r.Lifecycle != nil {
		out = append(out, r.Lifecycle.Targets...)
	}
	if r.Step != nil {
		out = append(out, r.Step.Targets...)
	}
	if r.Overhead != nil {
		out = append(out, r.Overhead.Targets...)
	}
	return out
}

// WriteLifecycleTable writes the report as text: each scenario's figures,
// then the targets' PASS and FAIL lines.
func WriteLifecycleTable(w io.Writer, r LifecycleReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "AI capacity %.2f requests/s (unscaled), time scale %g\n", r.CapacityRps, r.TimeScale)
	if lc := r.Lifecycle; lc != nil {
		fmt.Fprintf(&b, "\nlifecycle at %g× the capacity: %d requests\n", lc.Load, lc.Requests)
		rows := [][]string{{"role", "requests", "final statuses"}}
		for _, role := range lc.Roles {
			rows = append(rows, []string{role.Role, fmt.Sprint(role.Requests), joinCounts(role.Statuses)})
		}
		writeRows(&b, rows)
		fmt.Fprintf(&b, "AI calls started after a cancel was answered: %d; after a startBy: %d", lc.CallsAfterCancel, lc.CallsAfterStartBy)
		if lc.CallsAfterCancel+lc.CallsAfterStartBy > 0 {
			fmt.Fprintf(&b, " (the latest %.1f ms after)", lc.LateMs)
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "running calls canceled: %d, ended after the DELETE's answer in p50 %.0f ms, p99 %.0f ms, max %.0f ms; ended by themselves first: %d\n",
			len(lc.AbortsMs), lc.AbortP50Ms, lc.AbortP99Ms, lc.AbortMaxMs, lc.NotAborted)
	}
	if st := r.Step; st != nil {
		fmt.Fprintf(&b, "\nstep through %v× the capacity: predicted starts of waiting requests\n", st.Steps)
		rows := [][]string{{"load", "samples", "median |error|/wait", "median wait"}}
		for _, s := range st.ByStep {
			rows = append(rows, []string{fmt.Sprintf("%g×", s.Load), fmt.Sprint(s.Samples), fmt.Sprintf("%.1f%%", 100*s.MedianRelError),
				fmt.Sprintf("%.1f s", s.MedianWaitS)})
		}
		rows = append(rows, []string{"all", fmt.Sprint(st.Samples), fmt.Sprintf("%.1f%% (p90 %.1f%%)", 100*st.MedianRelError, 100*st.P90RelError),
			fmt.Sprintf("%.1f s", st.MedianWaitS)})
		writeRows(&b, rows)
		fmt.Fprintf(&b, "median |error| %.2f s, median bias (actual − predicted) %+.2f s; %d samples left out (started within %.1f s, or never)\n",
			st.MedianAbsErrS, st.MedianBiasS, st.Excluded, st.MinWaitS)
		fmt.Fprintf(&b, "final statuses: %s\n", joinCounts(st.Statuses))
	}
	if r.Overhead != nil {
		writeOverhead(&b, r.Overhead)
	}
	b.WriteString("\n")
	for _, t := range r.Targets() {
		fmt.Fprintf(&b, "%s %s: %s, want %s\n", passFail(t.Pass), t.Name, t.Got, t.Want)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteLifecycleCharts writes the step scenario's chart into dir, when it
// ran: each sample's predicted wait against its actual wait, by load. It
// returns the file names.
func WriteLifecycleCharts(dir string, r LifecycleReport) ([]string, error) {
	if r.Step == nil {
		return nil, nil
	}
	p := newPlot("Predicted vs actual wait (unscaled)", "actual wait (s)", "predicted wait (s)")
	top := 1.0
	for _, pt := range r.Step.Points {
		top = max(top, pt.Actual, pt.Predicted)
	}
	p.Add(plotterLine(0, top))
	for i, load := range r.Step.Steps {
		var xys plotter.XYs
		for _, pt := range r.Step.Points {
			if pt.Load == load {
				xys = append(xys, plotter.XY{X: pt.Actual, Y: finite(pt.Predicted)})
			}
		}
		if len(xys) == 0 {
			continue
		}
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = profileColor(i, "")
		s.GlyphStyle.Radius = vg.Points(1.5)
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("%g×", load), s)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("loadtest: charts: %w", err)
	}
	c := chart{name: "estimate", height: px(chartHpx), draw: p.Draw}
	var names []string
	for _, format := range chartFormats {
		name := c.name + "." + format
		if err := renderChart(filepath.Join(dir, name), format, c); err != nil {
			return names, fmt.Errorf("loadtest: chart %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// plotterLine is the diagonal y = x from 0 to top: a perfect estimate.
func plotterLine(lo, hi float64) *plotter.Line {
	l, _ := plotter.NewLine(plotter.XYs{{X: lo, Y: lo}, {X: hi, Y: hi}})
	l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	return l
}

// WriteLifecycleHTML writes the report as a self-contained HTML page, with
// the charts WriteLifecycleCharts wrote beside it.
func WriteLifecycleHTML(w io.Writer, r LifecycleReport, charts []string) error {
	var table strings.Builder
	if err := WriteLifecycleTable(&table, r); err != nil {
		return err
	}
	return lifecycleTemplate.Execute(w, struct {
		Report  LifecycleReport
		Table   string
		Targets []Target
		Charts  []string
	}{r, table.String(), r.Targets(), slices.DeleteFunc(slices.Clone(charts), func(c string) bool { return !strings.HasSuffix(c, ".png") })})
}

var lifecycleTemplate = template.Must(template.New("lifecycle").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>genpipe load test — lifecycle</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 1200px; padding: 0 16px; }
pre { background: #f4f6f8; padding: 12px; overflow-x: auto; }
ul.targets { list-style: none; padding: 0; }
ul.targets li { padding: 4px 8px; margin: 2px 0; border-left: 4px solid #999; }
ul.targets li.pass { border-color: #009e73; }
ul.targets li.fail { border-color: #b00020; background: #fdecee; }
img { max-width: 100%; }
</style>
</head>
<body>
<h1>genpipe load test: lifecycle</h1>
<p>Driven through the HTTP API; AI calls as the simulated AI services recorded them. Waits unscaled (time scale ×{{.Report.TimeScale}}), abort times real.</p>
<h2>Targets</h2>
<ul class="targets">
{{- range .Targets}}
<li class="{{if .Pass}}pass{{else}}fail{{end}}"><b>{{if .Pass}}PASS{{else}}FAIL{{end}}</b> {{.Name}}: {{.Got}}, want {{.Want}}</li>
{{- end}}
</ul>
<h2>Figures</h2>
<pre>{{.Table}}</pre>
{{- range .Charts}}
<p><a href="{{.}}"><img src="{{.}}" alt="{{.}}"></a></p>
{{- end}}
</body>
</html>
`))
