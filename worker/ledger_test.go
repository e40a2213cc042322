package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/worker"
)

// todays returns the ledger's usage of today, for every tenant, by stage.
func todays(t *testing.T, l genpipe.Ledger) map[genpipe.Stage]genpipe.Usage {
	t.Helper()
	today := genpipe.Day(time.Now())
	rows, err := l.Usage(testutil.Context(t), genpipe.UsageQuery{From: today, To: today.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[genpipe.Stage]genpipe.Usage{}
	for _, u := range rows {
		out[u.Stage] = u
	}
	return out
}

// The ledger counts exactly the calls the AI counts, by outcome, whatever
// the AI answers: 429s at capacity and injected (not paid, not in the
// ledger), injected 500s before a slot (not paid), failures after one.
func TestLedgerAgreesWithAI(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		const n = 3
		env := testenv.New(t)
		store := testenv.NewStatusStore(t)
		svc, url := simulatedAI(t, stage, aisim.WithCapacity(1), aisim.WithLatency(20*time.Millisecond),
			aisim.WithFaultRate(0.2), aisim.WithBusyRate(0.1), aisim.WithFaultSeed(7))
		handle, in, _ := newStage(t, stage, url, env, store, worker.WithRetry(fast), worker.WithLedger(store))
		var wg sync.WaitGroup
		for range n {
			event := testutil.JobEvent(in, uuid.NewString(), newJob(t))
			wg.Go(func() {
				if err := handle(testutil.Context(t), event); err != nil {
					t.Errorf("Handle: %v", err)
				}
			})
		}
		wg.Wait()
		st := svc.Stats()
		u := todays(t, store)[genpipe.Stage(stage)]
		t.Logf("AI: %d calls (%d succeeded, %d failed, %d abandoned), %d over capacity, %d injected 500s, %d injected 429s; ledger: %d calls %v",
			st.Calls, st.Succeeded, st.Failed, st.Abandoned, st.OverCapacity, st.InjectedFaults, st.InjectedBusy, u.Calls, u.Outcomes)
		if st.OverCapacity+st.InjectedFaults+st.InjectedBusy == 0 {
			t.Error("the AI refused nothing: the test did not exercise unpaid answers")
		}
		if u.Calls != st.Calls || u.Outcomes[genpipe.CallSucceeded] != st.Succeeded || u.Outcomes[genpipe.CallFailed] != st.Failed ||
			u.Outcomes[genpipe.CallAbandoned] != st.Abandoned {
			t.Errorf("ledger: %d calls %v; the AI counted %d: %d succeeded, %d failed, %d abandoned",
				u.Calls, u.Outcomes, st.Calls, st.Succeeded, st.Failed, st.Abandoned)
		}
		if u.AISeconds <= 0 {
			t.Errorf("ledger: %v AI-seconds; want the calls' durations", u.AISeconds)
		}
	})
}

// A tenant whose budget is spent gets no more calls: the next request
// fails naming the budget, without an AI call, and is dead-lettered so
// that an operator can replay it once the budget resets.
func TestBudgetSpentMakesNoCall(t *testing.T) {
	env := testenv.New(t)
	store := testenv.NewStatusStore(t)
	svc, url := simulatedAI(t, "generate")
	budget := genpipe.Budget{Stage: genpipe.StageGenerate, Calls: 1}
	var refused []string
	var mu sync.Mutex
	handle, in, _ := newStage(t, "generate", url, env, store, worker.WithRetry(fast), worker.WithLedger(store),
		worker.WithBudgets(func(tenant string) []genpipe.Budget {
			if tenant == "acme" {
				return []genpipe.Budget{budget}
			}
			return nil
		}),
		worker.WithCallHook(nil, func(_ context.Context, _ genpipe.Stage, e *genpipe.BudgetError) {
			mu.Lock()
			defer mu.Unlock()
			refused = append(refused, e.Tenant)
		}))
	event := func(tenant string) genpipe.Event {
		e := testutil.JobEvent(in, uuid.NewString(), newJob(t))
		e.Share.Tenant = tenant
		return e
	}
	if err := handle(testutil.Context(t), event("acme")); err != nil {
		t.Fatalf("first request: %v", err)
	}
	second := event("acme")
	wantDeadLetter(t, handle(testutil.Context(t), second), 1)
	results := of(readAll(t, env, env.Topics.Results), second.RequestID)
	if last := results[len(results)-1].event; last.Status != genpipe.StatusFailed ||
		!strings.Contains(last.Error, "budget of 1 generate calls a day is spent") || !strings.Contains(last.Error, "resets at") {
		t.Errorf("second request: %s %q; want failed naming the budget and its reset", last.Status, last.Error)
	}
	if err := handle(testutil.Context(t), event("other")); err != nil {
		t.Errorf("another tenant's request: %v; want done (budgets are per tenant)", err)
	}
	if st := svc.Stats(); st.Calls != 2 {
		t.Errorf("the AI got %d calls; want 2 (none for the request over budget)", st.Calls)
	}
	if len(refused) != 1 || refused[0] != "acme" {
		t.Errorf("budget hook heard %v; want [acme]", refused)
	}
}
