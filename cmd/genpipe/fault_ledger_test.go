package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/sqlstore"
)

// requireLedgerAgrees checks, in every fault test, that the ledger of paid
// calls in the status database counts what the AIs counted themselves
// (their GET /stats), stage by stage: the calls, to the call, and the
// failed ones. The AI tells a success from a call whose client went away;
// the ledger tells them apart only when the worker lived to read the
// answer. A worker killed after the AI answered, before it recorded the
// answer, leaves a call the AI counts succeeded and the ledger abandoned,
// so successes and abandoned calls are compared together, and the
// ledger's successes may only be fewer.
func (r *faultRig) requireLedgerAgrees(rep *faultReport) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(r.dir, "db", "genpipe.db"))
	if err != nil {
		r.t.Fatal(err)
	}
	defer store.Close()
	today := genpipe.Day(time.Now())
	rows, err := store.Usage(ctx, genpipe.UsageQuery{From: today.Add(-24 * time.Hour), To: today.Add(24 * time.Hour)}) // a test may cross midnight
	if err != nil {
		r.t.Fatal(err)
	}
	ledger := map[genpipe.Stage]genpipe.Usage{}
	for _, u := range rows {
		l := ledger[u.Stage]
		if l.Outcomes == nil {
			l.Outcomes = map[genpipe.CallOutcome]int64{}
		}
		l.Calls += u.Calls
		l.AISeconds += u.AISeconds
		for o, n := range u.Outcomes {
			l.Outcomes[o] += n
		}
		ledger[u.Stage] = l
	}
	for _, ai := range []struct {
		stage genpipe.Stage
		st    aisim.Stats
	}{{genpipe.StageCheck, rep.check}, {genpipe.StageGenerate, rep.generate}} {
		l, st := ledger[ai.stage], ai.st
		r.t.Logf("ledger %s: %d calls %v, %.1f AI-seconds; the AI: %d calls (%d succeeded, %d failed, %d abandoned, %d aborted, %d in flight)",
			ai.stage, l.Calls, l.Outcomes, l.AISeconds, st.Calls, st.Succeeded, st.Failed, st.Abandoned, st.Aborted, st.InFlight)
		succeeded, abandoned := l.Outcomes[genpipe.CallSucceeded], l.Outcomes[genpipe.CallAbandoned]+l.Outcomes[genpipe.CallAborted]
		if l.Calls != st.Calls || l.Outcomes[genpipe.CallFailed] != st.Failed || succeeded > st.Succeeded ||
			succeeded+abandoned != st.Succeeded+st.Abandoned+st.Aborted || l.Outcomes[genpipe.CallRunning] != int64(st.InFlight) {
			r.t.Errorf("ledger %s: %d calls %v; the AI counted %d calls: %d succeeded, %d failed, %d abandoned, %d aborted, %d in flight",
				ai.stage, l.Calls, l.Outcomes, st.Calls, st.Succeeded, st.Failed, st.Abandoned, st.Aborted, st.InFlight)
		}
	}
}
