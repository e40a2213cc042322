package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/google/uuid"
)

// claimTests pin down genpipe.ClaimStore: at most one holder at a time, an
// outcome that later claimers see instead of taking the claim, leases that
// expire, and failed claims retried only for a newer replay.
var claimTests = []test{
	{"FirstTakesOthersSeeHeld", func(t *testing.T, s Store) {
		id := uuid.NewString()
		before := time.Now()
		got := claim(t, s, id, genpipe.StageGenerate, "w1", time.Minute, 0)
		if got.State != genpipe.ClaimTaken || got.Takes != 1 || got.Owner != "w1" {
			t.Fatalf("first ClaimStage = %+v; want taken once by w1", got)
		}
		checkBetween(t, "LeaseUntil", got.LeaseUntil, before.Add(time.Minute-time.Second), time.Now().Add(time.Minute+time.Second))
		other := claim(t, s, id, genpipe.StageGenerate, "w2", time.Minute, 0)
		if other.State != genpipe.ClaimHeld || other.Owner != "w1" || !other.LeaseUntil.After(time.Now()) {
			t.Fatalf("second ClaimStage = %+v; want held by w1 with a future lease", other)
		}
		// The other stage of the same request is a claim of its own.
		if c := claim(t, s, id, genpipe.StageCheck, "w2", time.Minute, 0); c.State != genpipe.ClaimTaken {
			t.Fatalf("ClaimStage of the check stage = %+v; want taken", c)
		}
	}},
	{"DoneIsReportedWithOutput", func(t *testing.T, s Store) {
		id := newClaim(t, s, genpipe.StageCheck, "w1", time.Minute)
		checkCode(t, "FinishClaim by another owner", s.FinishClaim(t.Context(), id, genpipe.StageCheck, "w2", genpipe.ClaimDone, "x"), genpipe.ECONFLICT)
		if err := s.FinishClaim(t.Context(), id, genpipe.StageCheck, "w1", genpipe.ClaimDone, `{"pass":true}`); err != nil {
			t.Fatalf("FinishClaim: %v", err)
		}
		for _, replay := range []int{0, 1} { // a replay never redoes what succeeded
			got := claim(t, s, id, genpipe.StageCheck, "w2", time.Minute, replay)
			if got.State != genpipe.ClaimDone || got.Output != `{"pass":true}` || got.Takes != 1 {
				t.Fatalf("ClaimStage after done (replay %d) = %+v; want done with the output, taken once", replay, got)
			}
		}
		checkCode(t, "FinishClaim twice", s.FinishClaim(t.Context(), id, genpipe.StageCheck, "w1", genpipe.ClaimDone, "again"), genpipe.ECONFLICT)
		checkCode(t, "RenewClaim after done", s.RenewClaim(t.Context(), id, genpipe.StageCheck, "w1", time.Minute), genpipe.ECONFLICT)
	}},
	{"ExpiredLeaseIsTakenOver", func(t *testing.T, s Store) {
		id := newClaim(t, s, genpipe.StageGenerate, "dead", 50*time.Millisecond)
		time.Sleep(100 * time.Millisecond)
		got := claim(t, s, id, genpipe.StageGenerate, "w2", time.Minute, 0)
		if got.State != genpipe.ClaimTaken || got.Takes != 2 {
			t.Fatalf("ClaimStage after the lease expired = %+v; want taken, second take", got)
		}
		// The old holder learns it lost the claim and cannot record an outcome.
		checkCode(t, "RenewClaim by the old holder", s.RenewClaim(t.Context(), id, genpipe.StageGenerate, "dead", time.Minute), genpipe.ECONFLICT)
		checkCode(t, "FinishClaim by the old holder", s.FinishClaim(t.Context(), id, genpipe.StageGenerate, "dead", genpipe.ClaimDone, ""), genpipe.ECONFLICT)
	}},
	{"RenewKeepsTheClaim", func(t *testing.T, s Store) {
		id := newClaim(t, s, genpipe.StageGenerate, "w1", 200*time.Millisecond)
		if err := s.RenewClaim(t.Context(), id, genpipe.StageGenerate, "w1", time.Hour); err != nil {
			t.Fatalf("RenewClaim: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // past the first lease
		if got := claim(t, s, id, genpipe.StageGenerate, "w2", time.Minute, 0); got.State != genpipe.ClaimHeld || got.LeaseUntil.Before(time.Now().Add(50*time.Minute)) {
			t.Fatalf("ClaimStage after a renewal = %+v; want held for about an hour", got)
		}
	}},
	{"ReleaseLetsOthersTakeAtOnce", func(t *testing.T, s Store) {
		id := newClaim(t, s, genpipe.StageCheck, "w1", time.Hour)
		if err := s.ReleaseClaim(t.Context(), id, genpipe.StageCheck, "w2"); err != nil { // not the holder: no-op
			t.Fatalf("ReleaseClaim by another owner: %v", err)
		}
		if got := claim(t, s, id, genpipe.StageCheck, "w2", time.Minute, 0); got.State != genpipe.ClaimHeld {
			t.Fatalf("ClaimStage after another owner's release = %+v; want held", got)
		}
		if err := s.ReleaseClaim(t.Context(), id, genpipe.StageCheck, "w1"); err != nil {
			t.Fatalf("ReleaseClaim: %v", err)
		}
		if got := claim(t, s, id, genpipe.StageCheck, "w2", time.Minute, 0); got.State != genpipe.ClaimTaken {
			t.Fatalf("ClaimStage after the holder's release = %+v; want taken", got)
		}
	}},
	{"FailedIsRetriedOnlyForANewerReplay", func(t *testing.T, s Store) {
		id := newClaim(t, s, genpipe.StageGenerate, "w1", time.Minute)
		if err := s.FinishClaim(t.Context(), id, genpipe.StageGenerate, "w1", genpipe.ClaimFailed, "AI down"); err != nil {
			t.Fatalf("FinishClaim: %v", err)
		}
		if got := claim(t, s, id, genpipe.StageGenerate, "w2", time.Minute, 0); got.State != genpipe.ClaimFailed || got.Reason != "AI down" {
			t.Fatalf("ClaimStage of a failed claim = %+v; want failed with the reason", got)
		}
		if got := claim(t, s, id, genpipe.StageGenerate, "w3", time.Minute, 1); got.State != genpipe.ClaimTaken || got.Replay != 1 {
			t.Fatalf("ClaimStage for replay 1 = %+v; want taken", got)
		}
		if err := s.FinishClaim(t.Context(), id, genpipe.StageGenerate, "w3", genpipe.ClaimFailed, "still down"); err != nil {
			t.Fatalf("FinishClaim: %v", err)
		}
		// A redelivery of replay 1 must not pay again.
		if got := claim(t, s, id, genpipe.StageGenerate, "w4", time.Minute, 1); got.State != genpipe.ClaimFailed || got.Reason != "still down" || got.Replay != 1 {
			t.Fatalf("ClaimStage for replay 1 again = %+v; want failed", got)
		}
	}},
	{"ConcurrentClaimersOneWins", func(t *testing.T, s Store) {
		id := uuid.NewString()
		const n = 16
		var wg sync.WaitGroup
		states := make([]genpipe.ClaimState, n)
		for i := range n {
			wg.Go(func() {
				c, err := s.ClaimStage(t.Context(), genpipe.ClaimRequest{RequestID: id, Stage: genpipe.StageGenerate, Owner: uuid.NewString(), Lease: time.Minute})
				if err != nil {
					t.Errorf("ClaimStage: %v", err)
				}
				states[i] = c.State
			})
		}
		wg.Wait()
		taken := 0
		for _, st := range states {
			if st == genpipe.ClaimTaken {
				taken++
			} else if st != genpipe.ClaimHeld {
				t.Errorf("a losing claimer saw %q; want held", st)
			}
		}
		if taken != 1 {
			t.Fatalf("%d of %d concurrent claimers took the claim; want exactly 1", taken, n)
		}
	}},
	{"InvalidInput", func(t *testing.T, s Store) {
		_, err := s.ClaimStage(t.Context(), genpipe.ClaimRequest{RequestID: uuid.NewString(), Stage: genpipe.StageCheck, Lease: time.Minute})
		checkCode(t, "ClaimStage without an owner", err, genpipe.EINVALID)
		id := newClaim(t, s, genpipe.StageCheck, "w1", time.Minute)
		checkCode(t, "FinishClaim as taken", s.FinishClaim(t.Context(), id, genpipe.StageCheck, "w1", genpipe.ClaimTaken, ""), genpipe.EINVALID)
	}},
}

func claim(t *testing.T, s Store, id string, stage genpipe.Stage, owner string, lease time.Duration, replay int) genpipe.Claim {
	t.Helper()
	c, err := s.ClaimStage(t.Context(), genpipe.ClaimRequest{RequestID: id, Stage: stage, Owner: owner, Lease: lease, Replay: replay})
	if err != nil {
		t.Fatalf("ClaimStage(%s, %s, %s): %v", id, stage, owner, err)
	}
	return c
}

// newClaim claims stage of a new request for owner, with lease, and
// returns the request's id.
func newClaim(t *testing.T, s Store, stage genpipe.Stage, owner string, lease time.Duration) string {
	t.Helper()
	id := uuid.NewString()
	claim(t, s, id, stage, owner, lease, 0)
	return id
}
