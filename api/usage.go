package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// WithLedger serves GET /v1/usage from l, and checks the caller's tenant's
// budgets (see genpipe.Budget) at each POST /v1/requests against it:
// a request that would exceed one is refused with 429 (code
// budget_exceeded) naming the budget, with Retry-After until it resets.
// refused, when not nil, hears each refusal. Without a ledger there is no
// /v1/usage and budgets are not checked here (the workers still check them
// before each AI call).
func WithLedger(l genpipe.Ledger, refused func(tenant string, stage genpipe.Stage)) Option {
	return func(c *config) {
		c.ledger = l
		c.budgetRefused = refused
	}
}

// usageDay is one UTC day of a tenant's usage, by stage.
type usageDay struct {
	Day    string                       `json:"day"` // YYYY-MM-DD
	Stages map[genpipe.Stage]stageUsage `json:"stages"`
}

// stageUsage is the calls and AI time of one stage, with the calls by
// outcome.
type stageUsage struct {
	Calls     int64                         `json:"calls"`
	AISeconds float64                       `json:"aiSeconds"`
	Outcomes  map[genpipe.CallOutcome]int64 `json:"outcomes"`
}

func (u *stageUsage) add(v genpipe.Usage) {
	u.Calls += v.Calls
	u.AISeconds += v.AISeconds
	if u.Outcomes == nil {
		u.Outcomes = map[genpipe.CallOutcome]int64{}
	}
	for o, n := range v.Outcomes {
		u.Outcomes[o] += n
	}
}

// usageResponse is GET /v1/usage's answer.
type usageResponse struct {
	Tenant string                       `json:"tenant"`
	From   string                       `json:"from"` // first day, YYYY-MM-DD
	To     string                       `json:"to"`   // the day after the last, YYYY-MM-DD
	Days   []usageDay                   `json:"days"` // days with calls, in order
	Totals map[genpipe.Stage]stageUsage `json:"totals"`
	Calls  int64                        `json:"calls"`     // over every stage and day
	AISec  float64                      `json:"aiSeconds"` // over every stage and day
}

// getUsage answers the caller's tenant's calls and AI-seconds by stage and
// day over [from, to): ?from= and ?to= are dates (YYYY-MM-DD) or RFC 3339
// times, which stand for their UTC day (a to that is not a midnight takes
// its whole day in); from defaults to today (UTC), to to the day after
// from; at most genpipe.MaxUsageDays days.
func (s *Server) getUsage(w http.ResponseWriter, r *http.Request) {
	q, err := genpipe.ParseUsageRange(r.URL.Query().Get("from"), r.URL.Query().Get("to"), s.cfg.now())
	if err != nil {
		s.problem(w, r, err)
		return
	}
	q.Tenant = callerOf(r).tenant.Name
	rows, err := s.cfg.ledger.Usage(r.Context(), q)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, newUsageResponse(q, rows))
}

func newUsageResponse(q genpipe.UsageQuery, rows []genpipe.Usage) usageResponse {
	out := usageResponse{Tenant: q.Tenant, From: q.From.Format(time.DateOnly), To: q.To.Format(time.DateOnly),
		Days: []usageDay{}, Totals: map[genpipe.Stage]stageUsage{}}
	slices.SortFunc(rows, func(a, b genpipe.Usage) int { return a.Day.Compare(b.Day) })
	for _, u := range rows {
		day := u.Day.Format(time.DateOnly)
		if n := len(out.Days); n == 0 || out.Days[n-1].Day != day {
			out.Days = append(out.Days, usageDay{Day: day, Stages: map[genpipe.Stage]stageUsage{}})
		}
		d := &out.Days[len(out.Days)-1]
		su := d.Stages[u.Stage]
		su.add(u)
		d.Stages[u.Stage] = su
		total := out.Totals[u.Stage]
		total.add(u)
		out.Totals[u.Stage] = total
		out.Calls += u.Calls
		out.AISec += u.AISeconds
	}
	return out
}

// checkBudgets refuses a request of tenant t that would take a stage past
// one of t's budgets today: the day's calls, the calls reserved by its
// accepted requests that have not made them yet, and this one's. An
// AI-seconds budget counts each reserved call at the day's mean duration
// so far. Concurrent submissions may each pass with the last call left;
// the workers' check before each call holds the line (see
// genpipe.CallStart).
func (s *Server) checkBudgets(ctx context.Context, t genpipe.Tenant) error {
	if s.cfg.ledger == nil || len(t.Budgets) == 0 {
		return nil
	}
	today := genpipe.Day(s.cfg.now())
	used, err := s.cfg.ledger.DayUse(ctx, t.Name, today)
	if err != nil {
		return err
	}
	reserved, err := s.cfg.ledger.Reserved(ctx, t.Name)
	if err != nil {
		return err
	}
	for _, b := range t.Budgets {
		use, ahead := used[b.Stage], reserved[b.Stage]+1
		mean := 0.0
		if use.Calls > 0 {
			mean = use.AISeconds / float64(use.Calls)
		}
		use.Calls += ahead
		use.AISeconds += float64(ahead) * mean
		if (b.Calls > 0 && use.Calls > b.Calls) || (b.AISeconds > 0 && use.AISeconds > b.AISeconds) || b.Spent(used[b.Stage]) {
			if s.cfg.budgetRefused != nil {
				s.cfg.budgetRefused(t.Name, b.Stage)
			}
			ahead := fmt.Sprintf("%d calls today, %d waiting for theirs, and this one", used[b.Stage].Calls, reserved[b.Stage])
			if b.AISeconds > 0 {
				ahead = fmt.Sprintf("%.1f AI-seconds today, %d calls waiting at %.1f s each, and this one", used[b.Stage].AISeconds, reserved[b.Stage], mean)
			}
			return &genpipe.BudgetError{Tenant: t.Name, Budget: b, ResetAt: today.Add(24 * time.Hour), Ahead: ahead}
		}
	}
	return nil
}
