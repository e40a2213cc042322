package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

// webhookClaimTests pin down ClaimDueWebhooks: what it claims, that a claim keeps
// a delivery from every other claimer until its lease ends or the claimer
// records an outcome, and that concurrent claimers never share a delivery.
var webhookClaimTests = []test{
	{"ClaimsDueWithLease", func(t *testing.T, s Store) {
		now := time.Now()
		const lease = time.Minute
		var want []genpipe.WebhookDelivery
		for _, ago := range []time.Duration{time.Minute, 0, time.Second} {
			want = append(want, enqueueDue(t, s, now.Add(-ago)))
		}
		later := enqueueDue(t, s, now.Add(time.Second)) // not due yet

		got := claimWebhooks(t, s, now, lease, 10)
		if len(got) != len(want) {
			t.Fatalf("ClaimDueWebhooks = %d deliveries, want the %d due ones: %+v", len(got), len(want), got)
		}
		for i, d := range got {
			w := want[i] // both in ID order
			w.NextAttemptAt = now.Add(lease)
			checkDelivery(t, d, w)
		}
		// Within the lease only the delivery that fell due meanwhile is claimable.
		checkClaimed(t, claimWebhooks(t, s, now.Add(lease-time.Millisecond), lease, 10), later.ID)
		if again := claimWebhooks(t, s, now, lease, 10); len(again) != 0 {
			t.Errorf("claimed deliveries still due at the claim's time: %+v", again)
		}
	}},
	{"ExpiredLeaseClaimable", func(t *testing.T, s Store) {
		now := time.Now()
		const lease = 30 * time.Second
		d := enqueueDue(t, s, now.Add(-time.Second))
		first := claimWebhooks(t, s, now, lease, 1)
		if len(first) != 1 || first[0].ID != d.ID {
			t.Fatalf("first claim = %+v; want delivery %d", first, d.ID)
		}
		// The claimer died: nobody recorded an outcome.
		if got := claimWebhooks(t, s, now.Add(lease).Add(-time.Millisecond), lease, 1); len(got) != 0 {
			t.Fatalf("claimed %+v before the lease ended", got)
		}
		taken := claimWebhooks(t, s, now.Add(lease), time.Minute, 1)
		if len(taken) != 1 || taken[0].ID != d.ID || taken[0].Attempts != 0 {
			t.Fatalf("claim at the lease's end = %+v; want delivery %d again, no attempt counted", taken, d.ID)
		}
		checkTime(t, "NextAttemptAt of the second claim", taken[0].NextAttemptAt, now.Add(lease).Add(time.Minute))
	}},
	{"LongestOverdueFirst", func(t *testing.T, s Store) {
		now := time.Now()
		var ids []int64
		for _, ago := range []time.Duration{time.Minute, 3 * time.Minute, 2 * time.Minute} {
			ids = append(ids, enqueueDue(t, s, now.Add(-ago)).ID)
		}
		checkClaimed(t, claimWebhooks(t, s, now, time.Minute, 2), ids[1], ids[2])
		checkClaimed(t, claimWebhooks(t, s, now, time.Minute, 2), ids[0])
	}},
	{"OutcomeEndsClaim", func(t *testing.T, s Store) {
		now := time.Now()
		const lease = time.Hour
		retried := enqueueDue(t, s, now.Add(-time.Second))
		delivered := enqueueDue(t, s, now.Add(-time.Second))
		handedBack := enqueueDue(t, s, now.Add(-time.Second))
		claimed := claimWebhooks(t, s, now, lease, 10)
		checkClaimed(t, claimed, retried.ID, delivered.ID, handedBack.ID)

		// A failed attempt is due again at its retry time, not at the lease's end.
		d := claimed[0]
		d.Attempts, d.LastError, d.NextAttemptAt = 1, "receiver answered 503", now.Add(time.Minute)
		updateWebhook(t, s, d)
		d = claimed[1]
		d.State, d.Attempts = genpipe.WebhookDelivered, 1
		updateWebhook(t, s, d)
		// A claimer that stops before sending gives the delivery back at once.
		d = claimed[2]
		d.NextAttemptAt = now
		updateWebhook(t, s, d)

		checkClaimed(t, claimWebhooks(t, s, now, lease, 10), handedBack.ID)
		checkClaimed(t, claimWebhooks(t, s, now.Add(time.Minute), lease, 10), retried.ID)
		checkClaimed(t, claimWebhooks(t, s, now.Add(48*time.Hour), lease, 10), retried.ID, handedBack.ID)
	}},
	{"ConcurrentClaimersNeverShare", func(t *testing.T, s Store) {
		const deliveries, claimers, limit = 60, 8, 3
		now := time.Now()
		want := map[int64]bool{}
		for range deliveries {
			want[enqueueDue(t, s, now.Add(-time.Second)).ID] = true
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			owner = map[int64]int{} // delivery ID → claimer
			taken int               // claims returned, duplicates included
			start = make(chan struct{})
		)
		for c := range claimers {
			wg.Go(func() {
				<-start
				for stop := false; !stop; {
					got, err := s.ClaimDueWebhooks(t.Context(), now, time.Minute, limit)
					if err != nil {
						t.Errorf("claimer %d: ClaimDueWebhooks: %v", c, err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, d := range got {
						if prev, taken := owner[d.ID]; taken {
							t.Errorf("delivery %d claimed by claimers %d and %d", d.ID, prev, c)
						}
						owner[d.ID] = c
					}
					taken += len(got)
					stop = taken > deliveries // a store that hands deliveries out twice may never run dry
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(owner) != len(want) {
			t.Errorf("claimers took %d of %d due deliveries", len(owner), len(want))
		}
		used := map[int]bool{}
		for id, c := range owner {
			used[c] = true
			if !want[id] {
				t.Errorf("claimed delivery %d that was never queued", id)
			}
		}
		t.Logf("%d deliveries claimed by %d of %d claimers", len(owner), len(used), claimers)
	}},
	{"Invalid", func(t *testing.T, s Store) {
		enqueueDue(t, s, time.Now())
		for _, c := range []struct {
			lease time.Duration
			limit int
		}{{time.Minute, 0}, {time.Minute, -1}, {0, 10}, {-time.Second, 10}} {
			_, err := s.ClaimDueWebhooks(t.Context(), time.Now(), c.lease, c.limit)
			checkCode(t, fmt.Sprintf("ClaimDueWebhooks lease %v limit %d", c.lease, c.limit), err, genpipe.EINVALID)
		}
		if due := claimWebhooks(t, s, time.Now(), time.Minute, 10); len(due) != 1 {
			t.Errorf("an invalid claim changed the outbox: due %+v", due)
		}
	}},
}

// enqueueDue queues a pending delivery for a new request, due at next, and
// returns it as stored. It learns the delivery's ID as a claimer does: it
// queues the delivery long overdue (the only one so overdue, when every
// delivery of the test is queued here), claims it, and gives it back due
// at next.
func enqueueDue(t *testing.T, s Store, next time.Time) genpipe.WebhookDelivery {
	t.Helper()
	longAgo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	r := createPublished(t, s)
	d := delivery(r.ID, genpipe.StatusDone, longAgo)
	d.CreatedAt = next.Add(-time.Hour)
	enqueue(t, s, d)
	claimed := claimWebhooks(t, s, longAgo, time.Minute, 1)
	if len(claimed) != 1 || claimed[0].RequestID != r.ID {
		t.Fatalf("delivery of %s not due at its NextAttemptAt: claimed %+v", r.ID, claimed)
	}
	d = claimed[0]
	d.NextAttemptAt = next
	updateWebhook(t, s, d)
	return d
}

func claimWebhooks(t *testing.T, s Store, now time.Time, lease time.Duration, limit int) []genpipe.WebhookDelivery {
	t.Helper()
	got, err := s.ClaimDueWebhooks(t.Context(), now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimDueWebhooks: %v", err)
	}
	return got
}

func updateWebhook(t *testing.T, s Store, d genpipe.WebhookDelivery) {
	t.Helper()
	if err := s.UpdateWebhook(t.Context(), d); err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
}

// checkClaimed checks that the claim returned exactly the deliveries ids,
// in ID order.
func checkClaimed(t *testing.T, got []genpipe.WebhookDelivery, ids ...int64) {
	t.Helper()
	var gotIDs []int64
	for _, d := range got {
		gotIDs = append(gotIDs, d.ID)
	}
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(gotIDs, want) {
		t.Errorf("claimed deliveries %v; want %v", gotIDs, want)
	}
}
