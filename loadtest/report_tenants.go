package loadtest

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

// chartTenants is the per-tenant throughput chart, drawn for multi-tenant
// workloads only.
const chartTenants = "tenants"

// hasTenants reports whether any result has per-tenant figures.
func hasTenants(r Report) bool {
	for _, res := range r.Results {
		if len(res.Tenants) > 0 {
			return true
		}
	}
	return false
}

// tenantColumn is one column of the per-tenant table.
type tenantColumn struct {
	head, title string
	cell        func(TenantResult) string
}

// tenantColumns lists the per-tenant table's columns after the profile.
var tenantColumns = []tenantColumn{
	{"tenant", "tenant / priority", func(t TenantResult) string { return t.Name() }},
	{"weight", "weight", func(t TenantResult) string { return fmt.Sprint(t.Weight) }},
	{"requests", "requests", func(t TenantResult) string { return fmt.Sprint(t.Requests) }},
	{"started", "reached the AI", func(t TenantResult) string { return fmt.Sprint(t.Started) }},
	{"completed", "completed", func(t TenantResult) string { return fmt.Sprint(t.Completed) }},
	{"wait-p50-s", "wait p50 s", func(t TenantResult) string { return fixed(t.WaitP50Ms/1000, 1) }},
	{"wait-p95-s", "wait p95 s", func(t TenantResult) string { return fixed(t.WaitP95Ms/1000, 1) }},
	{"wait-p99-s", "wait p99 s", func(t TenantResult) string { return fixed(t.WaitP99Ms/1000, 1) }},
	{"wait-max-s", "wait max s", func(t TenantResult) string { return fixed(t.WaitMaxMs/1000, 1) }},
	{"share", "share of generative calls", func(t TenantResult) string { return percent(t.Share) }},
	{"share-contended", "share while every row waits", func(t TenantResult) string { return percent(t.ContendedShare) }},
	{"util-while-waiting", "AI utilization while it waits", func(t TenantResult) string { return fixed(t.UtilizationWhileWaiting, 3) }},
}

// throughputColumns is the most time buckets the text throughput table has.
const throughputColumns = 12

// writeTenants writes, for a multi-tenant report, the per-tenant table
// (wait from produce to the generative call starting, shares), the
// completions per second of each tenant over time in a few buckets, and
// the targets' PASS and FAIL lines. It writes nothing for other reports.
func writeTenants(b *strings.Builder, r Report) {
	if !hasTenants(r) {
		return
	}
	fmt.Fprintf(b, "\nper tenant (%s): wait = produce (the 202) → generative AI call start\n", r.Workload)
	rows := [][]string{{"profile"}}
	for _, c := range tenantColumns {
		rows[0] = append(rows[0], c.head)
	}
	for _, res := range r.Results {
		for _, t := range res.Tenants {
			row := []string{printable(res.Profile)}
			for _, c := range tenantColumns {
				row = append(row, printable(c.cell(t)))
			}
			rows = append(rows, row)
		}
	}
	writeRows(b, rows)

	bucket := throughputBucket(r)
	fmt.Fprintf(b, "\ncompletions per second by tenant, mean over %d s from the first produce\n", bucket)
	rows = [][]string{{"profile", "tenant"}}
	width := 0
	for _, res := range r.Results {
		for _, t := range res.Tenants {
			width = max(width, len(t.CompletionsPerSecond))
		}
	}
	for from := 0; from < width; from += bucket {
		rows[0] = append(rows[0], fmt.Sprintf("%d s", from))
	}
	for _, res := range r.Results {
		for _, t := range res.Tenants {
			row := []string{printable(res.Profile), printable(t.Name())}
			for from := 0; from < width; from += bucket {
				row = append(row, fixed(bucketMean(t.CompletionsPerSecond, from, bucket), 1))
			}
			rows = append(rows, row)
		}
	}
	writeRows(b, rows)

	b.WriteString("\ntargets\n")
	for _, res := range r.Results {
		for _, t := range res.Targets {
			fmt.Fprintf(b, "%s  %s  %s: %s, want %s\n", passFail(t.Pass), printable(res.Profile), printable(t.Name), printable(t.Got), printable(t.Want))
		}
	}
}

// writeRows writes an aligned table, the first column left-aligned.
func writeRows(b *strings.Builder, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for c, s := range row {
			widths[c] = max(widths[c], utf8.RuneCountInString(s))
		}
	}
	for _, row := range rows {
		writeRow(b, row, widths)
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// throughputBucket is the bucket, in whole seconds, that fits the longest
// tenant series into throughputColumns columns.
func throughputBucket(r Report) int {
	longest := 1
	for _, res := range r.Results {
		for _, t := range res.Tenants {
			longest = max(longest, len(t.CompletionsPerSecond))
		}
	}
	return smallestBucket(longest)
}

// smallestBucket returns the smallest of 1, 2, 5, 10, 20, 50, ... seconds
// that fits n seconds into throughputColumns columns.
func smallestBucket(n int) int {
	for p := 1; ; p *= 10 {
		for _, step := range []int{1, 2, 5} {
			if b := step * p; (n+b-1)/b <= throughputColumns {
				return b
			}
		}
	}
}

// bucketMean is the mean of series[from:from+n], counting missing seconds
// as 0.
func bucketMean(series []float64, from, n int) float64 {
	sum := 0.0
	for i := from; i < from+n && i < len(series); i++ {
		sum += finite(series[i])
	}
	return sum / float64(n)
}

// tenantsChart draws each profile's completions per second by tenant (6 s
// moving average), one panel per profile on a shared scale.
func tenantsChart(r Report) chart {
	n := 0
	for _, res := range r.Results {
		if len(res.Tenants) > 0 {
			n++
		}
	}
	h := px(max(chartHpx, 2*panelHpx*n+60))
	return stackedChart(chartTenants, h, func() [][]*plot.Plot { return tenantPlots(r) })
}

// tenantPlots returns one row per profile with tenants: a line per tenant
// row, coloured by its position, x and y on scales shared by the panels.
func tenantPlots(r Report) [][]*plot.Plot {
	var top float64
	seconds := 0
	for _, res := range r.Results {
		for _, t := range res.Tenants {
			seconds = max(seconds, len(t.CompletionsPerSecond))
			for s := range t.CompletionsPerSecond {
				top = math.Max(top, trailingMean(t.CompletionsPerSecond, s, smoothSeconds))
			}
		}
	}
	var rows [][]*plot.Plot
	for _, res := range r.Results {
		if len(res.Tenants) == 0 {
			continue
		}
		p := newPlot(res.Profile, "time since first produce (s, unscaled)", "completions (requests/s)")
		p.Title.TextStyle.Font = sans(13)
		p.Title.Padding = 4
		for j, t := range res.Tenants {
			xys := perSecond(t.CompletionsPerSecond)
			if len(xys) == 0 {
				continue
			}
			if l, err := plotter.NewLine(xys); err == nil {
				l.Color, l.Width = colorOthers[j%len(colorOthers)], 2
				p.Add(l)
				p.Legend.Add(t.Name(), l)
			}
		}
		p.X.Min, p.X.Max = 0, float64(max(seconds-1, 1))
		p.Y.Min, p.Y.Max = 0, math.Max(top, 1)*1.3
		p.Legend.Top = true
		rows = append(rows, []*plot.Plot{p})
	}
	if len(rows) == 0 {
		p := newPlot("Completions per second by tenant", "time since first produce (s, unscaled)", "completions (requests/s)")
		noData(p)
		return [][]*plot.Plot{{p}}
	}
	rows[0][0].Title.Text = "Completions per second by tenant (6 s moving average) — " + rows[0][0].Title.Text
	return rows
}

// htmlTenants is the per-tenant part of the HTML report.
type htmlTenants struct {
	Workload string
	Heads    []string
	Rows     [][]string
	Targets  []htmlTarget
}

type htmlTarget struct {
	Profile string
	Target
}

// tenantsPage returns the HTML report's per-tenant table and targets, or
// nil when the report has no tenants.
func tenantsPage(r Report) *htmlTenants {
	if !hasTenants(r) {
		return nil
	}
	page := &htmlTenants{Workload: r.Workload, Heads: []string{"profile"}}
	for _, c := range tenantColumns {
		page.Heads = append(page.Heads, c.title)
	}
	for _, res := range r.Results {
		for _, t := range res.Tenants {
			row := []string{res.Profile}
			for _, c := range tenantColumns {
				row = append(row, c.cell(t))
			}
			page.Rows = append(page.Rows, row)
		}
		for _, t := range res.Targets {
			page.Targets = append(page.Targets, htmlTarget{res.Profile, t})
		}
	}
	return page
}
