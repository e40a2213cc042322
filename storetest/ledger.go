package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/google/uuid"
)

// What the ledger of paid calls relies on: a started call counts at once
// (it is written before the AI is called), a forgotten one never; a
// running call whose owner no longer holds its claim is abandoned, in
// Usage and by AbandonCalls; a call finishes once; budgets refuse a call
// when the day's calls, running ones included, reached them, exactly, even
// under concurrent starts; Reserved counts unfinished requests without a
// call of the stage.

var ledgerTests = []test{
	{"StartFinishUsage", func(t *testing.T, s Store) {
		ctx := t.Context()
		tenant := "t-" + uuid.NewString()[:8]
		a := startCall(t, s, tenant, genpipe.StageGenerate, "w1", nil)
		b := startCall(t, s, tenant, genpipe.StageGenerate, "w2", nil)
		c := startCall(t, s, tenant, genpipe.StageCheck, "w3", nil)
		if a.ID == 0 || a.ID == b.ID || a.Outcome != genpipe.CallRunning {
			t.Fatalf("StartCall = %+v, %+v; want running calls with distinct ids", a, b)
		}
		if err := s.FinishCall(ctx, a.ID, genpipe.CallSucceeded, 3*time.Second); err != nil {
			t.Fatalf("FinishCall: %v", err)
		}
		if err := s.FinishCall(ctx, b.ID, genpipe.CallFailed, 1500*time.Millisecond); err != nil {
			t.Fatalf("FinishCall: %v", err)
		}
		checkCode(t, "FinishCall of a finished call", s.FinishCall(ctx, a.ID, genpipe.CallFailed, time.Second), genpipe.ECONFLICT)
		checkCode(t, "FinishCall running", s.FinishCall(ctx, c.ID, genpipe.CallRunning, time.Second), genpipe.EINVALID)
		if err := s.ForgetCall(ctx, c.ID); err != nil {
			t.Fatalf("ForgetCall: %v", err)
		}
		got := usage(t, s, tenant)
		if len(got) != 1 {
			t.Fatalf("Usage = %+v; want one row (generate today): a forgotten call is not paid", got)
		}
		u := got[0]
		if u.Tenant != tenant || u.Stage != genpipe.StageGenerate || !u.Day.Equal(genpipe.Day(time.Now())) ||
			u.Calls != 2 || u.AISeconds != 4.5 || u.Outcomes[genpipe.CallSucceeded] != 1 || u.Outcomes[genpipe.CallFailed] != 1 {
			t.Errorf("Usage = %+v; want 2 generate calls today, 4.5 AI-seconds, 1 succeeded, 1 failed", u)
		}
		if other := usageOf(t, s, genpipe.UsageQuery{Tenant: "nobody", From: genpipe.Day(time.Now()), To: genpipe.Day(time.Now()).Add(24 * time.Hour)}); len(other) != 0 {
			t.Errorf("Usage of another tenant = %+v; want none", other)
		}
		yesterday := genpipe.Day(time.Now()).Add(-24 * time.Hour)
		if old := usageOf(t, s, genpipe.UsageQuery{Tenant: tenant, From: yesterday.Add(-24 * time.Hour), To: yesterday}); len(old) != 0 {
			t.Errorf("Usage of earlier days = %+v; want none", old)
		}
	}},
	{"StartCallRetried", func(t *testing.T, s Store) {
		// A StartCall retried after its answer was lost (the row was
		// written) finds the same call: one row, one call counted, and a
		// budget the first try fitted in does not refuse the retry.
		tenant := "t-" + uuid.NewString()[:8]
		budgets := []genpipe.Budget{{Stage: genpipe.StageGenerate, Calls: 2}} // the second call fills it
		for _, b := range [][]genpipe.Budget{nil, budgets} {
			start := callStart(uuid.NewString(), tenant, genpipe.StageGenerate, "w1", b)
			first, err := s.StartCall(t.Context(), start)
			if err != nil {
				t.Fatalf("StartCall: %v", err)
			}
			again, err := s.StartCall(t.Context(), start)
			if err != nil || again.ID != first.ID {
				t.Fatalf("StartCall again (budgets %v) = %+v, %v; want call %d again", b, again, err, first.ID)
			}
			if err := s.FinishCall(t.Context(), first.ID, genpipe.CallSucceeded, time.Second); err != nil {
				t.Fatalf("FinishCall: %v", err)
			}
		}
		if got := usage(t, s, tenant); len(got) != 1 || got[0].Calls != 2 || got[0].AISeconds != 2 {
			t.Errorf("Usage = %+v; want 2 calls and 2 AI-seconds: each call counted once", got)
		}
	}},
	{"RunningCallOfALiveClaim", func(t *testing.T, s Store) {
		tenant := "t-" + uuid.NewString()[:8]
		id := newClaim(t, s, genpipe.StageGenerate, "w1", time.Minute)
		call := startCallOf(t, s, id, tenant, genpipe.StageGenerate, "w1", nil)
		if u := usage(t, s, tenant); len(u) != 1 || u[0].Calls != 1 || u[0].Outcomes[genpipe.CallRunning] != 1 {
			t.Fatalf("Usage = %+v; want 1 running call (its claim is held)", u)
		}
		if n, err := s.AbandonCalls(t.Context()); err != nil || n != 0 {
			t.Errorf("AbandonCalls = %d, %v; want 0: its owner holds the claim", n, err)
		}
		if err := s.FinishCall(t.Context(), call.ID, genpipe.CallSucceeded, time.Second); err != nil {
			t.Errorf("FinishCall: %v", err)
		}
	}},
	{"RunningCallWhoseOwnerDiedIsAbandoned", func(t *testing.T, s Store) {
		ctx := t.Context()
		tenant := "t-" + uuid.NewString()[:8]
		id := newClaim(t, s, genpipe.StageGenerate, "w1", 50*time.Millisecond)
		call := startCallOf(t, s, id, tenant, genpipe.StageGenerate, "w1", nil)
		time.Sleep(30 * time.Millisecond)
		if err := s.RenewCalls(ctx, "w1"); err != nil {
			t.Fatalf("RenewCalls: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the lease runs out: w1 died
		u := usage(t, s, tenant)
		if len(u) != 1 || u[0].Calls != 1 || u[0].Outcomes[genpipe.CallAbandoned] != 1 || u[0].AISeconds < 0.03 {
			t.Fatalf("Usage = %+v; want 1 abandoned call charged up to its renewal (≥ 0.03 s)", u)
		}
		// Another worker takes the claim over: still abandoned.
		claim(t, s, id, genpipe.StageGenerate, "w2", time.Minute, 0)
		if n, err := s.AbandonCalls(ctx); err != nil || n < 1 {
			t.Fatalf("AbandonCalls = %d, %v; want at least 1", n, err)
		}
		checkCode(t, "FinishCall of an abandoned call", s.FinishCall(ctx, call.ID, genpipe.CallSucceeded, time.Second), genpipe.ECONFLICT)
		if u := usage(t, s, tenant); len(u) != 1 || u[0].Calls != 1 || u[0].Outcomes[genpipe.CallAbandoned] != 1 {
			t.Errorf("Usage after AbandonCalls = %+v; want the call abandoned", u)
		}
	}},
	{"BudgetOfCalls", func(t *testing.T, s Store) {
		tenant := "t-" + uuid.NewString()[:8]
		budgets := []genpipe.Budget{{Stage: genpipe.StageGenerate, Calls: 2}}
		startCall(t, s, tenant, genpipe.StageGenerate, "w1", budgets)
		second := startCall(t, s, tenant, genpipe.StageGenerate, "w1", budgets)
		if err := s.FinishCall(t.Context(), second.ID, genpipe.CallFailed, time.Second); err != nil {
			t.Fatal(err)
		}
		_, err := s.StartCall(t.Context(), callStart(uuid.NewString(), tenant, genpipe.StageGenerate, "w1", budgets))
		be, ok := genpipe.IsBudget(err)
		if !ok || be.Budget != budgets[0] || be.Tenant != tenant || !be.ResetAt.Equal(genpipe.Day(time.Now()).Add(24*time.Hour)) {
			t.Fatalf("third StartCall = %v; want a BudgetError naming %v, resetting at the next midnight", err, budgets[0])
		}
		checkCode(t, "third StartCall", err, genpipe.EBUDGET)
		if u := usage(t, s, tenant); len(u) != 1 || u[0].Calls != 2 {
			t.Errorf("Usage = %+v; want 2 calls: a refused call is not written", u)
		}
		if use, err := s.DayUse(t.Context(), tenant, time.Now()); err != nil || use[genpipe.StageGenerate] != (genpipe.StageUse{Calls: 2, AISeconds: 1}) {
			t.Errorf("DayUse = %v, %v; want 2 generate calls, 1 AI-second (one running since now, one failed after 1 s)", use, err)
		}
		// Other stages and tenants are not held back.
		startCall(t, s, tenant, genpipe.StageCheck, "w1", budgets)
		startCall(t, s, tenant+"x", genpipe.StageGenerate, "w1", budgets)
	}},
	{"ForgottenCallFreesItsBudget", func(t *testing.T, s Store) {
		tenant := "t-" + uuid.NewString()[:8]
		budgets := []genpipe.Budget{{Stage: genpipe.StageGenerate, Calls: 1}}
		c := startCall(t, s, tenant, genpipe.StageGenerate, "w1", budgets)
		if err := s.ForgetCall(t.Context(), c.ID); err != nil { // a 429: not paid
			t.Fatal(err)
		}
		startCall(t, s, tenant, genpipe.StageGenerate, "w1", budgets)
		_, err := s.StartCall(t.Context(), callStart(uuid.NewString(), tenant, genpipe.StageGenerate, "w1", budgets))
		checkCode(t, "StartCall past a budget of 1 after a forgotten call and a paid one", err, genpipe.EBUDGET)
	}},
	{"AbandonedCallsChargeTheirTime", func(t *testing.T, s Store) {
		tenant := "t-" + uuid.NewString()[:8]
		budgets := []genpipe.Budget{{Stage: genpipe.StageGenerate, AISeconds: 0.05}}
		id := newClaim(t, s, genpipe.StageGenerate, "w1", 20*time.Millisecond)
		startCallOf(t, s, id, tenant, genpipe.StageGenerate, "w1", budgets)
		time.Sleep(60 * time.Millisecond)
		if err := s.RenewCalls(t.Context(), "w1"); err != nil { // its last sign of life, then it dies
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		if _, err := s.AbandonCalls(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, err := s.StartCall(t.Context(), callStart(uuid.NewString(), tenant, genpipe.StageGenerate, "w2", budgets))
		checkCode(t, "StartCall after an abandoned call of ≥ 0.06 AI-seconds under a budget of 0.05", err, genpipe.EBUDGET)
	}},
	{"BudgetOfAISeconds", func(t *testing.T, s Store) {
		tenant := "t-" + uuid.NewString()[:8]
		budgets := []genpipe.Budget{{Stage: genpipe.StageCheck, AISeconds: 2}}
		c := startCall(t, s, tenant, genpipe.StageCheck, "w1", budgets)
		if err := s.FinishCall(t.Context(), c.ID, genpipe.CallSucceeded, 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		c = startCall(t, s, tenant, genpipe.StageCheck, "w1", budgets) // 1.5 s used < 2
		if err := s.FinishCall(t.Context(), c.ID, genpipe.CallSucceeded, time.Second); err != nil {
			t.Fatal(err)
		}
		_, err := s.StartCall(t.Context(), callStart(uuid.NewString(), tenant, genpipe.StageCheck, "w1", budgets))
		checkCode(t, "StartCall with 2.5 of 2 AI-seconds used", err, genpipe.EBUDGET)
	}},
	{"BudgetUnderConcurrentStarts", func(t *testing.T, s Store) {
		tenant := "t-" + uuid.NewString()[:8]
		budgets := []genpipe.Budget{{Stage: genpipe.StageGenerate, Calls: 5}}
		var wg sync.WaitGroup
		var mu sync.Mutex
		started, refused := 0, 0
		for range 20 {
			wg.Go(func() {
				_, err := s.StartCall(t.Context(), callStart(uuid.NewString(), tenant, genpipe.StageGenerate, "w", budgets))
				mu.Lock()
				defer mu.Unlock()
				switch genpipe.ErrorCode(err) {
				case "":
					started++
				case genpipe.EBUDGET:
					refused++
				default:
					t.Errorf("StartCall: %v", err)
				}
			})
		}
		wg.Wait()
		if started != 5 || refused != 15 {
			t.Errorf("20 concurrent StartCalls under a budget of 5: %d started, %d refused; want 5 and 15", started, refused)
		}
	}},
	{"Reserved", func(t *testing.T, s Store) {
		tenant := "t-" + uuid.NewString()[:8]
		var ids []string
		for range 3 {
			r := newRequest("")
			r.Share.Tenant = tenant
			ids = append(ids, create(t, s, r).ID)
			publish(t, s, ids[len(ids)-1])
		}
		startCallOf(t, s, ids[0], tenant, genpipe.StageCheck, "w", nil)
		startCallOf(t, s, ids[0], tenant, genpipe.StageGenerate, "w", nil)
		startCallOf(t, s, ids[1], tenant, genpipe.StageCheck, "w", nil)
		advance(t, s, ids[2], genpipe.StatusFailed) // finished: nothing to reserve
		got, err := s.Reserved(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		if got[genpipe.StageCheck] != 0 || got[genpipe.StageGenerate] != 1 {
			t.Errorf("Reserved = %v; want check 0, generate 1", got)
		}
	}},
	{"Invalid", func(t *testing.T, s Store) {
		ctx := t.Context()
		_, err := s.StartCall(ctx, genpipe.CallStart{})
		checkCode(t, "StartCall of nothing", err, genpipe.EINVALID)
		bad := callStart(uuid.NewString(), "a", genpipe.StageCheck, "w", []genpipe.Budget{{Stage: "paint", Calls: 1}})
		_, err = s.StartCall(ctx, bad)
		checkCode(t, "StartCall with a budget of an unknown stage", err, genpipe.EINVALID)
		today := genpipe.Day(time.Now())
		for _, q := range []genpipe.UsageQuery{
			{From: today, To: today},
			{From: today.Add(time.Hour), To: today.Add(24 * time.Hour)},
			{From: today.Add(-400 * 24 * time.Hour), To: today},
		} {
			_, err := s.Usage(ctx, q)
			checkCode(t, "Usage of a bad range", err, genpipe.EINVALID)
		}
	}},
}

func callStart(id, tenant string, stage genpipe.Stage, owner string, budgets []genpipe.Budget) genpipe.CallStart {
	return genpipe.CallStart{Call: genpipe.Call{RequestID: id, Stage: stage, Tenant: tenant, Attempt: 1, Owner: owner}, Budgets: budgets}
}

func startCall(t *testing.T, s Store, tenant string, stage genpipe.Stage, owner string, budgets []genpipe.Budget) genpipe.Call {
	t.Helper()
	return startCallOf(t, s, uuid.NewString(), tenant, stage, owner, budgets)
}

func startCallOf(t *testing.T, s Store, id, tenant string, stage genpipe.Stage, owner string, budgets []genpipe.Budget) genpipe.Call {
	t.Helper()
	c, err := s.StartCall(t.Context(), callStart(id, tenant, stage, owner, budgets))
	if err != nil {
		t.Fatalf("StartCall: %v", err)
	}
	return c
}

// usage returns tenant's usage of today.
func usage(t *testing.T, s Store, tenant string) []genpipe.Usage {
	t.Helper()
	today := genpipe.Day(time.Now())
	return usageOf(t, s, genpipe.UsageQuery{Tenant: tenant, From: today, To: today.Add(24 * time.Hour)})
}

func usageOf(t *testing.T, s Store, q genpipe.UsageQuery) []genpipe.Usage {
	t.Helper()
	u, err := s.Usage(t.Context(), q)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}
