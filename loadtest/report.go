package loadtest

import (
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart base names; WriteCharts writes each as .png and .svg.
const (
	chartCompletions = "completions"
	chartPartitions  = "partitions"
	chartLatency     = "latency"
)

// chartFormats are the formats WriteCharts writes, PNG first (the HTML
// report shows the first and links the others).
var chartFormats = []string{"png", "svg"}

// Chart size: 800×500 px at vgimg's 96 dpi.
const (
	pxPerInch = 96
	chartWpx  = 800
	chartHpx  = 500
	panelHpx  = 180 // per profile in the records-per-partition chart
)

func px(n int) vg.Length { return vg.Length(n) * vg.Inch / pxPerInch }

// chart is one figure: its base file name, height and how to draw it.
type chart struct {
	name   string
	height vg.Length
	draw   func(draw.Canvas)
}

// WriteCharts draws the report's charts into dir and returns the file names
// (relative to dir): completions per second over time, records per
// partition of the requests topic, and the latency distribution, each as
// PNG and SVG; for a multi-tenant workload also completions per second by
// tenant. It creates dir if needed. Empty series are drawn as "no
// data" panels.
func WriteCharts(dir string, r Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("loadtest: charts: %w", err)
	}
	charts := []chart{
		{chartCompletions, px(chartHpx), completionsPlot(r).Draw},
		partitionsChart(r),
		{chartLatency, px(chartHpx), latencyPlot(r).Draw},
	}
	if hasTenants(r) { // what a multi-tenant run is about comes first
		charts = append([]chart{tenantsChart(r)}, charts...)
	}
	var names []string
	for _, c := range charts {
		for _, format := range chartFormats {
			name := c.name + "." + format
			if err := renderChart(filepath.Join(dir, name), format, c); err != nil {
				return names, fmt.Errorf("loadtest: chart %s: %w", name, err)
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// renderChart draws c onto a fresh white canvas and writes it to path.
func renderChart(path, format string, c chart) (err error) {
	cw, err := draw.NewFormattedCanvas(px(chartWpx), c.height, format)
	if err != nil {
		return err
	}
	dc := draw.New(cw)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	c.draw(dc)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = cw.WriteTo(f)
	return err
}

// Okabe–Ito colours: distinguishable with colour-blindness and in print.
var (
	colorNaive   = color.RGBA{R: 0xd5, G: 0x5e, B: 0x00, A: 0xff} // vermillion
	colorArticle = color.RGBA{R: 0x00, G: 0x72, B: 0xb2, A: 0xff} // blue
	colorGenpipe = color.RGBA{R: 0x00, G: 0x9e, B: 0x73, A: 0xff} // bluish green
	colorOthers  = []color.Color{
		color.RGBA{R: 0xcc, G: 0x79, B: 0xa7, A: 0xff}, // reddish purple
		color.RGBA{R: 0xe6, G: 0x9f, B: 0x00, A: 0xff}, // orange
		color.RGBA{R: 0x56, G: 0xb4, B: 0xe9, A: 0xff}, // sky blue
		color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}, // dark grey
	}
	colorGuide = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

// profileColor gives the known profiles fixed colours and the rest a
// colour by position.
func profileColor(i int, profile string) color.Color {
	switch profile {
	case "naive":
		return colorNaive
	case "article":
		return colorArticle
	case "genpipe":
		return colorGenpipe
	}
	return colorOthers[i%len(colorOthers)]
}

// sans is the font used for all chart text.
func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// newPlot returns a plot with a title, axis labels, sans-serif fonts sized
// for an 800×500 px image, and a light grid.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(15)
	p.Title.Padding = 8
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(13)
		a.Tick.Label.Font = sans(11)
	}
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.Legend.TextStyle.Font = sans(12)
	p.Legend.ThumbnailWidth = 28
	p.Legend.XOffs = -6 // keep the thumbnails off the image edge
	p.X.Tick.Marker, p.Y.Tick.Marker = niceTicks{n: 8}, niceTicks{n: 5}
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 0xdc}
	grid.Horizontal.Color = color.Gray{Y: 0xdc}
	p.Add(grid)
	return p
}

// noData marks an empty plot with a centred "no data" label on unit axes.
func noData(p *plot.Plot) {
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(nil), plot.ConstantTicks(nil)
	l, err := plotter.NewLabels(plotter.XYLabels{
		XYs:    plotter.XYs{{X: 0.5, Y: 0.5}},
		Labels: []string{"no data"},
	})
	if err != nil {
		return
	}
	l.TextStyle[0].Font = sans(16)
	l.TextStyle[0].Color = colorGuide
	l.TextStyle[0].XAlign, l.TextStyle[0].YAlign = draw.XCenter, draw.YCenter
	p.Add(l)
}

// finite replaces NaN and ±Inf by 0 so plotters accept the value.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// hline is a horizontal guide at y from x0 to x1 in the given colour and
// dash pattern.
func hline(y, x0, x1 float64, c color.Color, dashes ...vg.Length) *plotter.Line {
	l, err := plotter.NewLine(plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}})
	if err != nil {
		return nil
	}
	l.Color, l.Width, l.Dashes = c, 1.5, dashes
	return l
}

// completionsPlot draws completions per second over time, one line per
// profile, with a dashed horizontal line at each distinct maxRps.
func completionsPlot(r Report) *plot.Plot {
	p := newPlot("Completions per second (6 s moving average)", "time since first produce (s, unscaled)", "completions (requests/s)")
	top, seconds := 0.0, 0
	for i, res := range r.Results {
		xys := perSecond(res.CompletionsPerSecond)
		if len(xys) == 0 {
			continue
		}
		seconds = max(seconds, len(res.CompletionsPerSecond))
		for _, xy := range xys {
			top = math.Max(top, xy.Y)
		}
		if l, err := plotter.NewLine(xys); err == nil {
			l.Color, l.Width = profileColor(i, res.Profile), 2
			p.Add(l)
			p.Legend.Add(res.Profile, l)
		}
	}
	if seconds == 0 {
		noData(p)
		return p
	}
	xMax := float64(max(seconds-1, 1))
	for _, m := range maxRpsLines(r) {
		if l := hline(m.rps, 0, xMax, colorGuide, 6, 4); l != nil {
			p.Add(l)
			p.Legend.Add(m.label, l)
		}
		top = math.Max(top, m.rps)
	}
	p.X.Min, p.X.Max = 0, xMax
	// Headroom above the highest line keeps the legend (top right) clear
	// of the data.
	p.Y.Min, p.Y.Max = 0, math.Max(top, 1)*1.35
	p.Legend.Top = true
	return p
}

// perSecond turns a per-second series into points at x = second (non-finite
// values as 0); a lone second holds its value across the second so that it
// shows as a line.
func perSecond(series []float64) plotter.XYs {
	xys := make(plotter.XYs, len(series))
	for s := range series {
		xys[s] = plotter.XY{X: float64(s), Y: trailingMean(series, s, smoothSeconds)}
	}
	if len(xys) == 1 {
		xys = append(xys, plotter.XY{X: 1, Y: xys[0].Y})
	}
	return xys
}

// smoothSeconds is the window of the completions chart's moving average:
// a 3 s stage completes in waves, and per-second counts would draw them
// as a comb that hides the rate; a multiple of 3 s evens them out.
const smoothSeconds = 6

// trailingMean is the mean of series over the window ending at i.
func trailingMean(series []float64, i, window int) float64 {
	from := max(i-window+1, 0)
	sum := 0.0
	for _, v := range series[from : i+1] {
		sum += finite(v)
	}
	return sum / float64(i+1-from)
}

// maxRpsLine is one dashed capacity line and its legend label.
type maxRpsLine struct {
	rps   float64
	label string
}

// maxRpsLines returns one line per distinct positive maxRps; when the
// profiles disagree each label names its profiles.
func maxRpsLines(r Report) []maxRpsLine {
	var lines []maxRpsLine
	profiles := map[float64][]string{}
	for _, res := range r.Results {
		m := finite(res.MaxRps)
		if m <= 0 {
			continue
		}
		if _, ok := profiles[m]; !ok {
			lines = append(lines, maxRpsLine{rps: m})
		}
		profiles[m] = append(profiles[m], res.Profile)
	}
	for i := range lines {
		lines[i].label = fmt.Sprintf("maxRps %s req/s", num(lines[i].rps))
		if len(lines) > 1 {
			lines[i].label += " (" + strings.Join(profiles[lines[i].rps], ", ") + ")"
		}
	}
	return lines
}

// num formats a figure with precision that suits its size.
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// partitionsChart draws records per partition of the requests topic, one
// panel per profile on a shared scale, with a dashed line at the mean.
func partitionsChart(r Report) chart {
	n := max(len(r.Results), 1)
	h := px(max(chartHpx, panelHpx*n+60))
	return stackedChart(chartPartitions, h, func() [][]*plot.Plot { return partitionPlots(r) })
}

// stackedChart draws the single-column rows of plots makes, one panel
// above the other, their axes aligned.
func stackedChart(name string, height vg.Length, plots func() [][]*plot.Plot) chart {
	return chart{name: name, height: height, draw: func(dc draw.Canvas) {
		rows := plots()
		tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadY: 6, PadTop: 4, PadBottom: 4, PadLeft: 4, PadRight: 8}
		canvases := plot.Align(rows, tiles, dc)
		for i := range rows {
			rows[i][0].Draw(canvases[i][0])
		}
	}}
}

// partitionPlots returns one single-column row per profile (or one "no
// data" row when there are no results).
func partitionPlots(r Report) [][]*plot.Plot {
	if len(r.Results) == 0 {
		p := newPlot("Records per partition of the requests topic", "partition", "records")
		noData(p)
		return [][]*plot.Plot{{p}}
	}
	var top float64
	for _, res := range r.Results {
		for _, v := range res.RecordsPerPartition {
			top = math.Max(top, float64(v))
		}
	}
	rows := make([][]*plot.Plot, len(r.Results))
	for i, res := range r.Results {
		p := partitionPlot(i, res, top)
		if i == 0 {
			p.Title.Text = "Records per partition of the requests topic — " + p.Title.Text
		}
		if i < len(r.Results)-1 {
			p.X.Label.Text = ""
		}
		rows[i] = []*plot.Plot{p}
	}
	return rows
}

// partitionPlot is one profile's panel: a bar per partition, y up to top.
func partitionPlot(i int, res Result, top float64) *plot.Plot {
	title := fmt.Sprintf("%s (max/mean %s)", res.Profile, num(finite(res.PartitionMaxOverMean)))
	p := newPlot(title, "partition", "records")
	p.Title.TextStyle.Font = sans(13)
	p.Title.Padding = 4
	n := len(res.RecordsPerPartition)
	if n == 0 {
		noData(p)
		return p
	}
	vals := make(plotter.Values, n)
	var sum float64
	for j, v := range res.RecordsPerPartition {
		vals[j] = float64(max(v, 0))
		sum += vals[j]
	}
	width := max((px(chartWpx)-70)/vg.Length(n)*0.8, 0.5)
	bars, err := plotter.NewBarChart(vals, width)
	if err == nil {
		bars.Color, bars.LineStyle.Width = profileColor(i, res.Profile), 0
		p.Add(bars)
	}
	if mean := hline(sum/float64(n), -0.5, float64(n)-0.5, colorGuide, 5, 3); mean != nil {
		p.Add(mean)
		p.Legend.Add("mean "+num(sum/float64(n)), mean)
		p.Legend.Top = true
	}
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.X.Tick.Marker = niceTicks{n: 8, whole: true}
	p.Y.Min, p.Y.Max = 0, math.Max(top, 1)*1.15
	return p
}

// ecdfPoints caps the points drawn per latency curve.
const ecdfPoints = 1000

// latencyPlot draws each profile's latency distribution as an ECDF: the
// share of completed requests (%) done within x ms. The x axis is
// logarithmic when latencies span more than a factor of 20.
func latencyPlot(r Report) *plot.Plot {
	p := newPlot("Latency distribution (produce → terminal status)", "latency (ms)", "completed requests (%)")
	lo, hi := math.Inf(1), math.Inf(-1)
	curves := make([]plotter.XYs, len(r.Results))
	for i, res := range r.Results {
		curves[i] = ecdf(res.LatenciesMs)
		if n := len(curves[i]); n > 0 {
			lo, hi = math.Min(lo, curves[i][0].X), math.Max(hi, curves[i][n-1].X)
		}
	}
	if math.IsInf(lo, 0) {
		noData(p)
		return p
	}
	logX := lo > 0 && hi/lo > 20
	for i, xys := range curves {
		if logX {
			xys = slices.DeleteFunc(xys, func(xy plotter.XY) bool { return xy.X <= 0 })
		}
		addCurve(p, xys, r.Results[i].Profile, profileColor(i, r.Results[i].Profile))
	}
	setLatencyAxis(p, lo, hi, logX)
	p.Y.Min, p.Y.Max = 0, 100
	p.Y.Tick.Marker = plot.ConstantTicks(percentTicks())
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = 8
	return p
}

// addCurve adds one profile's ECDF line (if it has points) and its legend
// entry.
func addCurve(p *plot.Plot, xys plotter.XYs, profile string, c color.Color) {
	if len(xys) == 0 {
		return
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return
	}
	l.Color, l.Width, l.StepStyle = c, 2, plotter.PostStep
	p.Add(l)
	p.Legend.Add(profile, l)
}

// ecdf returns the empirical CDF of the finite latencies, in percent,
// sampled at up to ecdfPoints points (always including the extremes).
func ecdf(latencies []float64) plotter.XYs {
	xs := make([]float64, 0, len(latencies))
	for _, v := range latencies {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			xs = append(xs, max(v, 0))
		}
	}
	slices.Sort(xs)
	n := len(xs)
	if n == 0 {
		return nil
	}
	k := min(n, ecdfPoints)
	xys := make(plotter.XYs, 0, k+1)
	xys = append(xys, plotter.XY{X: xs[0], Y: 0})
	for j := 1; j <= k; j++ {
		i := j*n/k - 1 // last index of the j-th slice
		xys = append(xys, plotter.XY{X: xs[i], Y: 100 * float64(i+1) / float64(n)})
	}
	return xys
}

// setLatencyAxis sets the x range (padded when all latencies are equal)
// and, on a log scale, 1-2-5 ticks.
func setLatencyAxis(p *plot.Plot, lo, hi float64, logX bool) {
	if !logX {
		if hi-lo < 1e-9 {
			lo, hi = math.Max(lo-1, 0), hi+1
		}
		p.X.Min, p.X.Max = math.Min(lo, 0), hi*1.1
		return
	}
	p.X.Min, p.X.Max = lo/1.1, hi*1.1
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
}

// percentTicks labels 0–100 % every 25 with minor ticks every 5.
func percentTicks() []plot.Tick {
	var ticks []plot.Tick
	for v := 0; v <= 100; v += 5 {
		t := plot.Tick{Value: float64(v)}
		if v%25 == 0 {
			t.Label = fmt.Sprint(v)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// logTicks labels 1, 2 and 5 times each power of ten, with unlabelled
// minor ticks at the other integers.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	if lo <= 0 || hi <= lo {
		return ticks
	}
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = tickLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// tickLabel writes a tick value briefly, large round values compactly
// (2000 → 2k).
func tickLabel(v float64) string {
	v, _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 9, 64), 64) // drop float noise: 0.30000000000000004
	if v == 0 {
		return "0" // not -0
	}
	if math.Abs(v) >= 1000 && math.Mod(v, 1000) == 0 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// column is one column of the results table, shared by WriteTable and
// WriteHTML.
type column struct {
	head  string              // terminal header
	title string              // HTML header
	cell  func(Result) string // formatted value
	bad   func(Result) bool   // highlighted in the HTML report
}

// columns lists the results table's columns in order.
var columns = []column{
	{"profile", "profile", func(r Result) string { return r.Profile }, nil},
	{"requests", "requests", func(r Result) string { return fmt.Sprint(r.Requests) }, nil},
	{"completed", "completed", func(r Result) string { return fmt.Sprint(r.Completed) }, nil},
	{"lost", "lost", func(r Result) string { return fmt.Sprint(r.Lost) }, func(r Result) bool { return r.Lost > 0 }},
	{"rps", "requests/s", func(r Result) string { return fixed(r.ThroughputRps, 1) }, nil},
	{"max-rps", "max requests/s", func(r Result) string { return fixed(r.MaxRps, 1) }, nil},
	{"util", "utilization", func(r Result) string { return percent(r.Utilization) }, nil},
	{"ideal-util", "ideal utilization", func(r Result) string { return ifIdeal(r, percent(r.IdealUtilization)) }, nil},
	{"util/ideal", "utilization / ideal", func(r Result) string { return ifIdeal(r, fixed(r.UtilizationOfIdeal, 3)) }, nil},
	{"p50-ms", "p50 ms", func(r Result) string { return fixed(r.P50Ms, 0) }, nil},
	{"p95-ms", "p95 ms", func(r Result) string { return fixed(r.P95Ms, 0) }, nil},
	{"p99-ms", "p99 ms", func(r Result) string { return fixed(r.P99Ms, 0) }, nil},
	{"part-max/mean", "partition max/mean", func(r Result) string { return fixed(r.PartitionMaxOverMean, 2) }, nil},
	{"rebalances", "rebalances", func(r Result) string { return fmt.Sprint(r.Rebalances) }, nil},
	{"redeliveries", "redeliveries", func(r Result) string { return fmt.Sprint(r.Redeliveries) }, nil},
	{"dup-ai-calls", "duplicate AI calls", func(r Result) string { return fmt.Sprint(r.DuplicateAICalls) },
		func(r Result) bool { return r.DuplicateAICalls > 0 }},
	{"workers", "workers per stage", func(r Result) string { return fmt.Sprint(r.Workers) }, nil},
	{"ai-peak", "AI peak concurrency", func(r Result) string { return fmt.Sprint(r.AIMaxConcurrent) }, nil},
	{"ai-429", "AI 429s", func(r Result) string { return fmt.Sprint(r.AIOverCapacity) }, nil},
	{"slot-gap-p99-ms", "slot gap p99 ms (real)", func(r Result) string { return fixed(r.SlotGapP99Ms, 1) }, nil},
}

// fixed formats v with prec decimals, or "–" when it is not finite.
func fixed(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// ifIdeal returns cell, or "–" when r has no ideal figure (a report from
// before it, or a run without a generative call).
func ifIdeal(r Result, cell string) string {
	if !(r.IdealUtilization > 0) {
		return "–"
	}
	return cell
}

// percent formats a ratio as a percentage.
func percent(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// WriteTable prints the results as an aligned text table for the
// terminal: a header line, then one line per profile with requests,
// completed, lost, rps, max rps, utilization, the ideal utilization and
// utilization over it, p50/p95/p99 ms, partition max/mean, rebalances,
// redeliveries and duplicate AI calls. The profile column is
// left-aligned, the figures right-aligned. A multi-tenant report goes on
// with a table per tenant and priority (waits, shares), each tenant's
// completions over time and the targets' PASS/FAIL lines.
func WriteTable(w io.Writer, r Report) error {
	rows := [][]string{make([]string, len(columns))}
	for c, col := range columns {
		rows[0][c] = col.head
	}
	for _, res := range r.Results {
		row := make([]string, len(columns))
		for c, col := range columns {
			row[c] = printable(col.cell(res))
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(columns))
	for _, row := range rows {
		for c, s := range row {
			widths[c] = max(widths[c], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		writeRow(&b, row, widths)
	}
	writeTenants(&b, r)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRow writes one table line: the first cell padded right, the others
// padded left, two spaces apart.
func writeRow(b *strings.Builder, row []string, widths []int) {
	for c, s := range row {
		pad := strings.Repeat(" ", widths[c]-utf8.RuneCountInString(s))
		switch {
		case c == 0:
			b.WriteString(s + pad)
		default:
			b.WriteString("  " + pad + s)
		}
	}
	b.WriteString("\n")
}

// printable replaces control characters (a newline in a profile name
// would break the table) with U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

// chartTexts gives each known chart a heading and a caption saying what to
// look for.
var chartTexts = map[string][2]string{
	chartCompletions: {"Completions per second",
		"One line per profile, a 6 s moving average; the dashed line is maxRps, the AI's capacity limit. " +
			"Look at how close each profile stays to it, and at naive's stalls and bursts " +
			"(rebalances, batches consumed again)."},
	chartPartitions: {"Records per partition of the requests topic",
		"One panel per profile on the same scale; the dashed line is the mean. " +
			"Keyless sticky partitioning (naive) bunches each burst into a few partitions, " +
			"so most consumers idle; keyed profiles spread evenly (max/mean near 1)."},
	chartLatency: {"Latency distribution",
		"Share of completed requests done within a latency (produce → terminal status). " +
			"Further left and steeper is better; the curve crosses 50, 95 and 99 % at p50, p95 and p99."},
	chartTenants: {"Completions per second by tenant",
		"One panel per profile, a line per tenant (and priority), a 6 s moving average. " +
			"First come, first served gives a burst's tenant everything until its burst is done; " +
			"fair sharing keeps every waiting tenant's line up, in proportion to its weight."},
}

// figure is one chart in the HTML report: the image shown and links to the
// same chart in other formats.
type figure struct {
	Title, Caption, Image string
	Others                []string
}

// figures groups chart files by base name, in order, showing a PNG where
// there is one.
func figures(charts []string) []figure {
	var figs []figure
	index := map[string]int{}
	for _, name := range charts {
		ext := filepath.Ext(name)
		base := strings.TrimSuffix(name, ext)
		i, ok := index[base]
		if !ok {
			text, known := chartTexts[base]
			if !known {
				text[0] = base
			}
			i, index[base] = len(figs), len(figs)
			figs = append(figs, figure{Title: text[0], Caption: text[1]})
		}
		f := &figs[i]
		switch {
		case f.Image == "":
			f.Image = name
		case strings.EqualFold(ext, ".png") && !strings.EqualFold(filepath.Ext(f.Image), ".png"):
			f.Others = append(f.Others, f.Image)
			f.Image = name
		default:
			f.Others = append(f.Others, name)
		}
	}
	return figs
}

// htmlCell is one table cell in the HTML report.
type htmlCell struct {
	Text string
	Bad  bool
}

// htmlPage is the data behind reportTemplate.
type htmlPage struct {
	Report  Report
	Date    string
	Heads   []string
	Rows    [][]htmlCell
	Figures []figure
	Tenants *htmlTenants // multi-tenant workloads only
}

// WriteHTML writes a self-contained HTML report (inline CSS, no scripts):
// a title with the scenario, shape (or multi-tenant workload), time scale
// and date, the results table (lost and duplicate AI calls above zero in
// red), for a multi-tenant workload a table per tenant and priority and the
// targets' PASS and FAIL lines, and the charts side by side in a wrapping
// grid (each links to its full-size file), referenced by the names
// WriteCharts returned (the HTML file belongs in the same directory), each
// with a caption saying what to look for. Everything from the report is
// HTML-escaped.
func WriteHTML(w io.Writer, r Report, charts []string) error {
	page := htmlPage{Report: r, Date: "date unknown", Figures: figures(charts), Tenants: tenantsPage(r)}
	if !r.StartedAt.IsZero() {
		page.Date = r.StartedAt.Format("2006-01-02 15:04 MST")
	}
	for _, col := range columns {
		page.Heads = append(page.Heads, col.title)
	}
	for _, res := range r.Results {
		row := make([]htmlCell, len(columns))
		for c, col := range columns {
			row[c] = htmlCell{Text: col.cell(res), Bad: col.bad != nil && col.bad(res)}
		}
		page.Rows = append(page.Rows, row)
	}
	return reportTemplate.Execute(w, page)
}

// reportTemplate is the HTML report; html/template escapes every value.
var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>genpipe load test — {{.Report.Scenario}} / {{.Report.Shape}}</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; color: #222; margin: 24px auto; max-width: 1680px; padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 4px; }
.meta { color: #555; margin: 0 0 16px; }
.meta b { color: #222; }
.note { background: #f4f6f8; border-left: 4px solid #0072b2; padding: 8px 12px; margin: 12px 0 20px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th { background: #f4f6f8; font-weight: 600; vertical-align: bottom; white-space: normal; }
th:first-child, td:first-child { text-align: left; font-weight: 600; }
td.bad { color: #b00020; background: #fdecee; font-weight: 700; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 500px), 1fr)); gap: 20px; margin-top: 24px; align-items: start; }
figure { margin: 0; border: 1px solid #e2e2e2; border-radius: 6px; padding: 12px; background: #fff; }
figure img { display: block; width: 100%; height: auto; }
figcaption { color: #444; font-size: 14px; margin-top: 8px; }
figcaption b { color: #222; }
figcaption a { color: #0072b2; }
h2 { font-size: 19px; margin: 28px 0 8px; }
ul.targets { list-style: none; padding: 0; }
ul.targets li { padding: 4px 8px; margin: 2px 0; border-left: 4px solid #999; }
ul.targets li.pass { border-color: #009e73; }
ul.targets li.fail { border-color: #b00020; background: #fdecee; }
</style>
</head>
<body>
<h1>genpipe load test</h1>
<p class="meta">scenario <b>{{.Report.Scenario}}</b> · {{with .Report.Workload}}workload <b>{{.}}</b>{{else}}shape <b>{{.Report.Shape}}</b>{{end}} · time scale <b>×{{.Report.TimeScale}}</b> · {{.Date}}</p>
<p class="note">All figures are measured from what happened in the run (records, AI calls, group events), never computed from settings, and are unscaled: times and rates were divided by the time scale so they compare with the article's. The one exception is the ideal utilization: what a zero-overhead pipeline would score on the same schedule of arrivals (the AIs' capacities and latencies, instant hand-over between stages), the best any pipeline could; utilization / ideal says how close each profile came to it.</p>
<div class="scroll">
<table>
<thead><tr>{{range .Heads}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr>{{range .}}<td{{if .Bad}} class="bad"{{end}}>{{.Text}}</td>{{end}}</tr>
{{- else}}
<tr><td colspan="{{len .Heads}}">no results</td></tr>
{{- end}}
</tbody>
</table>
</div>
{{- with .Tenants}}
<h2>Per tenant: {{.Workload}}</h2>
<p class="note">Wait is the time from a request's produce (standing for the API's 202) to the simulated Generative AI seeing its call start. Shares count generative calls: over the whole run, and among the calls that started while every row had a request waiting, which is where the scheduler chooses.</p>
<div class="scroll">
<table>
<thead><tr>{{range .Heads}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
</div>
<h2>Targets</h2>
<ul class="targets">
{{- range .Targets}}
<li class="{{if .Pass}}pass{{else}}fail{{end}}"><b>{{if .Pass}}PASS{{else}}FAIL{{end}}</b> {{.Profile}} · {{.Name}}: {{.Got}}, want {{.Want}}</li>
{{- else}}
<li>no targets for this workload</li>
{{- end}}
</ul>
{{- end}}
<div class="charts">
{{- range .Figures}}
<figure>
<a href="{{.Image}}"><img src="{{.Image}}" alt="{{.Title}}"></a>
<figcaption><b>{{.Title}}.</b> {{.Caption}}{{range .Others}} <a href="{{.}}">{{.}}</a>{{end}}</figcaption>
</figure>
{{- end}}
</div>
</body>
</html>
`))

// niceTicks labels round values (1, 2 or 5 times a power of ten) about
// n times across the range, with unlabelled minor ticks between them.
// With whole set, steps are at least 1 and there are no minor ticks
// between integers.
type niceTicks struct {
	n     int
	whole bool
}

// Ticks implements plot.Ticker.
func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return ticks
	}
	step := niceStep((hi - lo) / float64(max(t.n, 1)))
	minor := step / 5
	if m := step / math.Pow(10, math.Floor(math.Log10(step))); m == 2 {
		minor = step / 4
	}
	if t.whole {
		step, minor = math.Max(step, 1), math.Max(minor, 1)
	}
	for i := math.Ceil(lo / minor); i*minor <= hi+minor*1e-9; i++ {
		v := i * minor
		tick := plot.Tick{Value: v}
		if r := math.Round(v / step); math.Abs(v-r*step) < minor*1e-6 {
			tick.Value = r * step
			tick.Label = tickLabel(tick.Value)
		}
		ticks = append(ticks, tick)
	}
	return ticks
}

// niceStep returns the value of 1, 2 or 5 times a power of ten nearest
// to x on a log scale.
func niceStep(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	best := p
	for _, m := range []float64{2, 5, 10} {
		if math.Abs(math.Log(m*p/x)) < math.Abs(math.Log(best/x)) {
			best = m * p
		}
	}
	return best
}
