package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlstore"
)

const usageUsage = `Usage: genpipe usage [flags]

usage prints the ledger of paid AI calls from the status database: every
tenant's calls and AI-seconds by stage and UTC day over [-from, -to), with
the calls by outcome (succeeded, failed, aborted by a cancel, abandoned by
a worker that died or gave up, running), and totals. Calls the AI did not
take on (429 at capacity, a stored answer replayed) are not paid and not
listed.

`

func cmdUsage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg              common
		database         string
		from, to, tenant string
		asJSON           bool
	)
	fs := newFlags("usage", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageUsage); fs.PrintDefaults() }
	cfg.register(fs)
	fs.SensitiveString(&database, "database-url", "GENPIPE_DATABASE_URL", sqlstore.DefaultURL,
		"status database: sqlite:PATH or postgres://user:password@host:port/dbname", check[string](sqlstore.CheckURL))
	fs.StringVar(&from, "from", "", "first day: YYYY-MM-DD or an RFC 3339 time (its UTC day); default today (UTC)")
	fs.StringVar(&to, "to", "", "the day after the last: YYYY-MM-DD or an RFC 3339 time (a time takes its whole day in); default the day after -from")
	fs.StringVar(&tenant, "tenant", "", "only this tenant; default every tenant")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q, err := genpipe.ParseUsageRange(from, to, time.Now())
	if err != nil {
		return fmt.Errorf("usage: %s", genpipe.ErrorMessage(err))
	}
	q.Tenant = tenant
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, err := sqlstore.Open(ctx, database)
	if err != nil {
		return err
	}
	defer store.Close()
	rows, err := store.Usage(ctx, q)
	if err != nil {
		return err
	}
	if asJSON {
		return printUsageJSON(stdout, q, rows)
	}
	return printUsageTable(stdout, rows)
}

// usageRow is one line of `genpipe usage -json`'s "rows".
type usageRow struct {
	Tenant    string                        `json:"tenant"`
	Day       string                        `json:"day"`
	Stage     genpipe.Stage                 `json:"stage"`
	Calls     int64                         `json:"calls"`
	AISeconds float64                       `json:"aiSeconds"`
	Outcomes  map[genpipe.CallOutcome]int64 `json:"outcomes"`
}

// usageTotal is the calls and AI-seconds of one stage over every tenant
// and day.
type usageTotal struct {
	Calls     int64   `json:"calls"`
	AISeconds float64 `json:"aiSeconds"`
}

func printUsageJSON(w io.Writer, q genpipe.UsageQuery, rows []genpipe.Usage) error {
	out := struct {
		From   string                       `json:"from"`
		To     string                       `json:"to"`
		Rows   []usageRow                   `json:"rows"`
		Totals map[genpipe.Stage]usageTotal `json:"totals"`
	}{From: q.From.Format(time.DateOnly), To: q.To.Format(time.DateOnly), Rows: []usageRow{}, Totals: map[genpipe.Stage]usageTotal{}}
	for _, u := range rows {
		out.Rows = append(out.Rows, usageRow{Tenant: u.Tenant, Day: u.Day.Format(time.DateOnly), Stage: u.Stage,
			Calls: u.Calls, AISeconds: u.AISeconds, Outcomes: u.Outcomes})
		t := out.Totals[u.Stage]
		t.Calls += u.Calls
		t.AISeconds += u.AISeconds
		out.Totals[u.Stage] = t
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func printUsageTable(w io.Writer, rows []genpipe.Usage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tDAY\tSTAGE\tCALLS\tAI-SECONDS\tOUTCOMES")
	totals := map[genpipe.Stage]*usageTotal{}
	for _, u := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%s\n", u.Tenant, u.Day.Format(time.DateOnly), u.Stage, u.Calls, u.AISeconds, outcomes(u.Outcomes))
		if totals[u.Stage] == nil {
			totals[u.Stage] = &usageTotal{}
		}
		totals[u.Stage].Calls += u.Calls
		totals[u.Stage].AISeconds += u.AISeconds
	}
	for _, stage := range []genpipe.Stage{genpipe.StageCheck, genpipe.StageGenerate} {
		if t := totals[stage]; t != nil {
			fmt.Fprintf(tw, "total\t\t%s\t%d\t%.1f\t\n", stage, t.Calls, t.AISeconds)
		}
	}
	return tw.Flush()
}

// outcomes lists the calls by outcome, in genpipe.CallOutcomes' order:
// "succeeded=3 failed=1".
func outcomes(m map[genpipe.CallOutcome]int64) string {
	var parts []string
	for _, o := range genpipe.CallOutcomes {
		if n := m[o]; n > 0 {
			parts = append(parts, string(o)+"="+strconv.FormatInt(n, 10))
		}
	}
	return strings.Join(parts, " ")
}
