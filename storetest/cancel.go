package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
)

// The suite of cancel and deadlines (genpipe.CancelStore, and what the
// claims and the task queue refuse): a cancel ends a request that has not
// ended, once, with its history and webhook, against any race; a
// canceled request, or one past its StartBy, gets no claim and no take.

var cancelTests = []test{
	{"CancelsWaitingRequest", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		advance(t, s, r.ID, genpipe.StatusChecking)
		got, changed := cancel(t, s, r.ID)
		if !changed || got.Status != genpipe.StatusCanceled || got.Error != genpipe.CancelReason {
			t.Fatalf("CancelRequest = %s %q, changed %v; want canceled %q, changed", got.Status, got.Error, changed, genpipe.CancelReason)
		}
		checkStatus(t, s, r.ID, genpipe.StatusCanceled)
		var statuses []genpipe.Status
		for _, c := range history(t, s, r.ID) {
			statuses = append(statuses, c.Status)
		}
		if want := []genpipe.Status{genpipe.StatusReceived, genpipe.StatusChecking, genpipe.StatusCanceled}; !slices.Equal(statuses, want) {
			t.Errorf("history %v; want %v", statuses, want)
		}
		// The webhook is queued with the cancel, whatever becomes of the
		// status event.
		if w := read(t, s, r.ID).Webhook; w == nil || w.Status != genpipe.StatusCanceled || w.State != genpipe.WebhookPending {
			t.Errorf("webhook after cancel = %+v; want a pending delivery of canceled", w)
		}
		// The notifier's copy, from the status event, is the same delivery.
		enqueue(t, s, delivery(r.ID, genpipe.StatusCanceled, time.Now()))
		if due := claimWebhooks(t, s, time.Now().Add(time.Minute), time.Minute, 10); len(due) != 1 {
			t.Errorf("%d deliveries due after the cancel and its event; want 1", len(due))
		}
	}},
	{"CancelIsIdempotent", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		first, _ := cancel(t, s, r.ID)
		again, changed := cancel(t, s, r.ID)
		if changed || again.Status != genpipe.StatusCanceled || !again.UpdatedAt.Equal(first.UpdatedAt) {
			t.Errorf("second CancelRequest = %s at %v, changed %v; want canceled at %v, unchanged", again.Status, again.UpdatedAt, changed, first.UpdatedAt)
		}
		if h := history(t, s, r.ID); len(h) != 2 {
			t.Errorf("history has %d changes after two cancels; want 2", len(h))
		}
	}},
	{"EndedIsConflict", func(t *testing.T, s Store) {
		for _, st := range []genpipe.Status{genpipe.StatusDone, genpipe.StatusRejected, genpipe.StatusFailed, genpipe.StatusExpired} {
			r := createPublished(t, s)
			advance(t, s, r.ID, st)
			got, changed, err := s.CancelRequest(t.Context(), r.ID)
			checkCode(t, "CancelRequest of a "+string(st)+" request", err, genpipe.ECONFLICT)
			if changed || got == nil || got.Status != st {
				t.Errorf("CancelRequest of a %s request = %+v, changed %v; want it as it stands", st, got, changed)
			}
			checkStatus(t, s, r.ID, st)
		}
	}},
	{"UnknownIsNotFound", func(t *testing.T, s Store) {
		unpublished := create(t, s, newRequest(""))
		for _, id := range []string{uuid.NewString(), "not-a-uuid", unpublished.ID} {
			_, _, err := s.CancelRequest(t.Context(), id)
			checkCode(t, "CancelRequest("+id+")", err, genpipe.ENOTFOUND)
		}
	}},
	{"LateDoneLoses", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		cancel(t, s, r.ID)
		apply(t, s, change(r.ID, genpipe.StatusDone), false)
		apply(t, s, change(r.ID, genpipe.StatusGenerating), false)
		checkStatus(t, s, r.ID, genpipe.StatusCanceled)
	}},
	{"ConcurrentCancelsAndDone", func(t *testing.T, s Store) {
		for range 10 {
			r := createPublished(t, s)
			const n = 6
			var wg sync.WaitGroup
			var mu sync.Mutex
			canceled, conflicts, doneApplied := 0, 0, false
			for i := range n + 1 {
				wg.Go(func() {
					if i == n {
						applied, err := s.ApplyStatus(t.Context(), change(r.ID, genpipe.StatusDone))
						if err != nil {
							t.Errorf("ApplyStatus: %v", err)
						}
						mu.Lock()
						doneApplied = applied
						mu.Unlock()
						return
					}
					_, changed, err := s.CancelRequest(t.Context(), r.ID)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case changed:
						canceled++
					case genpipe.ErrorCode(err) == genpipe.ECONFLICT:
						conflicts++
					case err != nil:
						t.Errorf("CancelRequest: %v", err)
					}
				})
			}
			wg.Wait()
			final := read(t, s, r.ID).Status
			switch {
			case doneApplied && (canceled != 0 || conflicts != n || final != genpipe.StatusDone):
				t.Fatalf("done won, yet %d cancels changed it and %d conflicted, status %s", canceled, conflicts, final)
			case !doneApplied && (canceled != 1 || conflicts != 0 || final != genpipe.StatusCanceled):
				t.Fatalf("done lost: %d cancels changed it (want 1), %d conflicted (want 0), status %s", canceled, conflicts, final)
			}
			if h := history(t, s, r.ID); len(h) != 2 {
				t.Fatalf("history of %d changes; want received and one terminal", len(h))
			}
		}
	}},
	{"CanceledRequests", func(t *testing.T, s Store) {
		a, b, c := createPublished(t, s), createPublished(t, s), createPublished(t, s)
		cancel(t, s, a.ID)
		cancel(t, s, c.ID)
		advance(t, s, b.ID, genpipe.StatusDone)
		got, err := s.CanceledRequests(t.Context(), []string{a.ID, b.ID, c.ID, uuid.NewString(), "not-a-uuid"})
		if err != nil {
			t.Fatalf("CanceledRequests: %v", err)
		}
		slices.Sort(got)
		want := []string{a.ID, c.ID}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("CanceledRequests = %v; want %v", got, want)
		}
		if got, err := s.CanceledRequests(t.Context(), nil); err != nil || len(got) != 0 {
			t.Errorf("CanceledRequests(nil) = %v, %v; want none", got, err)
		}
	}},
	{"ClaimRefusesCanceled", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		cancel(t, s, r.ID)
		for _, stage := range []genpipe.Stage{genpipe.StageCheck, genpipe.StageGenerate} {
			if c := claim(t, s, r.ID, stage, "w1", time.Minute, 0); c.State != genpipe.ClaimCanceled {
				t.Errorf("claim %s of a canceled request = %s; want canceled", stage, c.State)
			}
		}
		// A claim whose holder died is not taken over either.
		r2 := createPublished(t, s)
		claim(t, s, r2.ID, genpipe.StageCheck, "dead", time.Millisecond, 0)
		cancel(t, s, r2.ID)
		time.Sleep(5 * time.Millisecond)
		if c := claim(t, s, r2.ID, genpipe.StageCheck, "w2", time.Minute, 0); c.State != genpipe.ClaimCanceled {
			t.Errorf("claim of a canceled request whose holder died = %s; want canceled", c.State)
		}
	}},
	{"TakeDropsCanceled", func(t *testing.T, s Store) {
		gone, live := createPublished(t, s), createPublished(t, s)
		enqueueTasks(t, s, newTask(gone.ID, "a", genpipe.PriorityNormal, 1))
		cancel(t, s, gone.ID)
		// A task of the request stored after its cancel (its record was on
		// its way) is dropped at the take.
		late := newTask(gone.ID, "a", genpipe.PriorityNormal, 1)
		late.Replay = 1
		enqueueTasks(t, s, late, newTask(live.ID, "a", genpipe.PriorityNormal, 1))
		got := takeTasks(t, s, "w1", 10, 10)
		checkOrder(t, got, live.ID)
		finish(t, s, "w1", got...)
		if got := takeTasks(t, s, "w1", 10, 10); len(got) != 0 {
			t.Errorf("took %d tasks after the canceled request's were dropped; want 0", len(got))
		}
	}},
}

var deadlineTests = []test{
	{"StoresStartBy", func(t *testing.T, s Store) {
		in := newRequest("")
		in.StartBy = time.Now().Add(time.Hour).Round(time.Millisecond)
		got := create(t, s, in)
		publish(t, s, got.ID)
		checkTime(t, "StartBy as created", got.StartBy, in.StartBy)
		checkTime(t, "StartBy as read", read(t, s, got.ID).StartBy, in.StartBy)
		if none := createPublished(t, s); !read(t, s, none.ID).StartBy.IsZero() {
			t.Errorf("a request without a deadline reads StartBy %v; want zero", read(t, s, none.ID).StartBy)
		}
	}},
	{"ClaimRefusesPastStartBy", func(t *testing.T, s Store) {
		past := newRequest("")
		past.StartBy = time.Now().Add(-time.Second)
		r := create(t, s, past)
		publish(t, s, r.ID)
		c := claim(t, s, r.ID, genpipe.StageCheck, "w1", time.Minute, 0)
		if c.State != genpipe.ClaimExpired || c.Reason == "" || !c.Ended {
			t.Errorf("claim past StartBy = %s %q, ended %v; want expired with a reason, ending the request", c.State, c.Reason, c.Ended)
		}
		if got := read(t, s, r.ID); got.Status != genpipe.StatusExpired || got.Error != c.Reason {
			t.Errorf("request after the late claim: %s %q; want expired with the claim's reason", got.Status, got.Error)
		}
		// Another handling finds it ended: expired, not counted again.
		if again := claim(t, s, r.ID, genpipe.StageCheck, "w2", time.Minute, 0); again.State != genpipe.ClaimExpired || again.Ended {
			t.Errorf("second late claim = %s, ended %v; want expired, not ending it again", again.State, again.Ended)
		}
		future := newRequest("")
		future.StartBy = time.Now().Add(time.Hour)
		r2 := create(t, s, future)
		if c := claim(t, s, r2.ID, genpipe.StageCheck, "w1", time.Minute, 0); c.State != genpipe.ClaimTaken {
			t.Errorf("claim before StartBy = %s; want taken", c.State)
		}
		// Within StartMargin of its StartBy a request is late already: a
		// call claimed then would reach the AI after it.
		almost := newRequest("")
		almost.StartBy = time.Now().Add(genpipe.StartMargin * 9 / 10)
		r4 := create(t, s, almost)
		publish(t, s, r4.ID)
		if c := claim(t, s, r4.ID, genpipe.StageCheck, "w1", time.Minute, 0); c.State != genpipe.ClaimExpired {
			t.Errorf("claim %v before StartBy, within StartMargin = %s; want expired", time.Until(almost.StartBy), c.State)
		}
		// A stage finished before the deadline keeps its outcome.
		short := newRequest("")
		short.StartBy = time.Now().Add(300 * time.Millisecond)
		r3 := create(t, s, short)
		claim(t, s, r3.ID, genpipe.StageCheck, "w1", time.Minute, 0)
		if err := s.FinishClaim(t.Context(), r3.ID, genpipe.StageCheck, "w1", genpipe.ClaimDone, "ok"); err != nil {
			t.Fatalf("FinishClaim: %v", err)
		}
		time.Sleep(time.Until(short.StartBy) + 10*time.Millisecond)
		if c := claim(t, s, r3.ID, genpipe.StageCheck, "w2", time.Minute, 0); c.State != genpipe.ClaimDone {
			t.Errorf("claim of a stage done before StartBy, after it = %s; want done", c.State)
		}
		if c := claim(t, s, r3.ID, genpipe.StageGenerate, "w2", time.Minute, 0); c.State != genpipe.ClaimExpired {
			t.Errorf("claim of the next stage after StartBy = %s; want expired", c.State)
		}
	}},
	{"TakeExpiresPastStartBy", func(t *testing.T, s Store) {
		past := newRequest("")
		past.StartBy = time.Now().Add(-time.Second).Round(time.Millisecond)
		late := create(t, s, past)
		publish(t, s, late.ID)
		live := createPublished(t, s)
		lt := newTask(late.ID, "a", genpipe.PriorityNormal, 1)
		lt.StartBy = past.StartBy
		ft := newTask(live.ID, "a", genpipe.PriorityNormal, 1)
		ft.StartBy = time.Now().Add(time.Hour).Round(time.Millisecond)
		enqueueTasks(t, s, lt, ft)
		got := takeTasks(t, s, "w1", 1, 1) // one slot: the late task takes none
		if len(got) != 2 || got[0].RequestID != live.ID || got[0].Expired || !got[1].Expired || got[1].RequestID != late.ID {
			t.Fatalf("took %+v; want the live task, then the late one expired", got)
		}
		checkTime(t, "taken task's StartBy", got[0].StartBy, ft.StartBy)
		checkTime(t, "expired task's StartBy", got[1].StartBy, lt.StartBy)
		r := read(t, s, late.ID)
		if r.Status != genpipe.StatusExpired || r.Error == "" || r.Webhook == nil || r.Webhook.Status != genpipe.StatusExpired {
			t.Errorf("request of the late task: %s %q, webhook %+v; want expired with a reason and its webhook queued", r.Status, r.Error, r.Webhook)
		}
		finish(t, s, "w1", got[0])
		if got := takeTasks(t, s, "w1", 10, 10); len(got) != 0 {
			t.Errorf("took %d tasks after the late one expired; want 0", len(got))
		}
	}},
	{"TakeExpiresWhileSlotsBusy", func(t *testing.T, s Store) {
		busy := createPublished(t, s)
		enqueueTasks(t, s, newTask(busy.ID, "a", genpipe.PriorityNormal, 1))
		if got := takeTasks(t, s, "w1", 1, 1); len(got) != 1 {
			t.Fatalf("took %d tasks; want the one", len(got))
		}
		short := newRequest("")
		short.StartBy = time.Now().Add(200 * time.Millisecond)
		late := create(t, s, short)
		publish(t, s, late.ID)
		lt := newTask(late.ID, "a", genpipe.PriorityNormal, 1)
		lt.StartBy = short.StartBy
		enqueueTasks(t, s, lt)
		time.Sleep(time.Until(short.StartBy) + 10*time.Millisecond)
		// Every slot is busy (capacity 1), and the taker has room for none:
		// the late task expires all the same.
		got, err := s.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: "w2", Max: 0, Capacity: 1, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !got[0].Expired || got[0].RequestID != late.ID {
			t.Fatalf("take with every slot busy returned %+v; want the late task expired", got)
		}
		checkStatus(t, s, late.ID, genpipe.StatusExpired)
	}},
}

func cancel(t *testing.T, s Store, id string) (*genpipe.Request, bool) {
	t.Helper()
	r, changed, err := s.CancelRequest(t.Context(), id)
	if err != nil {
		t.Fatalf("CancelRequest(%s): %v", id, err)
	}
	return r, changed
}
