// Package storetest is the conformance suite of the status store, in each
// of its roles (genpipe.RequestStore, genpipe.WebhookOutbox,
// genpipe.ClaimStore). Every implementation runs it from its own tests, on
// every database it supports, so that all of them behave alike, as river's
// riverdrivertest does for river's database drivers:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Store {
//			s, err := sqlstore.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "genpipe.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite pins down what the roles document and what their
// callers (api, notifier) rely on beyond that:
//
//   - Request IDs are UUIDs, so a store may use a uuid column type.
//   - Timestamps come back in UTC and equal to what was stored to the
//     millisecond at least.
//   - ApplyStatus applies to a request not yet published (the pipeline may
//     run before MarkPublished returns), while Request and History report
//     ENOTFOUND for it.
//   - The done change in History carries the Result.
//   - ClaimPublish gives a claim to exactly one of any number of
//     concurrent callers, even to its holder only once; a
//     ReleasePublish by anyone but the holder, or after publishing, changes
//     nothing. CreateClaimed creates a request with its claim held by the
//     request's own id, and takes nothing for an existing one.
//   - ClaimDueWebhooks claims the longest overdue first (by NextAttemptAt,
//     then ID); EnqueueWebhook defaults an empty State to pending and zero
//     times to now.
//   - A request keeps the Share it was created with, its defaults filled
//     in (genpipe.Share.Normalized), and a retry with its idempotency key
//     gets the first one's share.
//   - Request carries the newest webhook delivery of the request once one
//     is queued, so that GET shows where it stands.
//   - CancelRequest ends a published request that has not ended, once
//     (of concurrent cancels and a racing done exactly one wins), with its
//     history row and its webhook queued; again it answers the same, for
//     an ended request ECONFLICT. ClaimStage answers ClaimCanceled or
//     ClaimExpired (a canceled request, one past its StartBy on the
//     store's clock) instead of taking the claim, and TakeTasks never takes
//     such a request's task: it drops a canceled one's, and expires a late
//     one (returned with Expired set), even while every slot is busy
//     (cancel.go).
//   - Concurrent calls of one kind (CreateRequest, CreateClaimed,
//     MarkPublished) each get the outcome they would get alone, whether
//     or not the store runs them together (concurrent.go).
//   - Invalid input (no request ID, unknown status, priority or webhook
//     state, a weight out of range, non-positive limit or lease) is an
//     EINVALID error.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/google/uuid"
)

// Store is a status store in every role the suite tests.
type Store interface {
	genpipe.RequestStore
	genpipe.WebhookOutbox
	genpipe.ClaimStore
	genpipe.CancelStore
	genpipe.TaskQueue
	genpipe.Ledger
	Ping(ctx context.Context) error
	Close() error
}

// Run runs the conformance suite as subtests of t, in parallel (see
// t.Parallel and go test's -parallel). newStore must return an empty store
// of its own for each call, safe to use while other calls' stores are in
// use (ClaimDueWebhooks claims from every delivery in the store); Run
// closes it when the subtest ends, before any cleanup that newStore
// registered with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	open := func(t *testing.T) Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	for _, group := range []struct {
		name  string
		tests []test
	}{
		{"CreateRequest", createRequestTests},
		{"Request", requestTests},
		{"MarkPublished", markPublishedTests},
		{"Concurrent", concurrentTests},      // concurrent.go
		{"PublishClaims", publishClaimTests}, // publish.go
		{"ApplyStatus", applyStatusTests},
		{"History", historyTests},
		{"Webhooks", webhookTests},
		{"ClaimWebhooks", webhookClaimTests},
		{"Ping", pingTests},
		{"Backlog", backlogTests}, {"Owner", ownerTests}, // admission.go
		{"Share", shareTests}, // share.go
		{"Claims", claimTests},
		{"Cancel", cancelTests}, {"Deadlines", deadlineTests}, // cancel.go
		{"Ledger", ledgerTests}, // ledger.go
	} {
		t.Run(group.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range group.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open(t))
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, s Store)
}

var createRequestTests = []test{
	{"StoresReceived", func(t *testing.T, s Store) {
		in := newRequest("")
		in.Status, in.Error = genpipe.StatusDone, "ignored" // CreateRequest always stores received
		before := time.Now()
		got, created, err := s.CreateRequest(t.Context(), in)
		after := time.Now()
		if err != nil || !created {
			t.Fatalf("CreateRequest = created %v, %v; want created", created, err)
		}
		want := *in
		want.Status, want.Error = genpipe.StatusReceived, ""
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
		checkRequest(t, "CreateRequest", got, &want)
		checkBetween(t, "CreatedAt", got.CreatedAt, before, after)
		checkTime(t, "UpdatedAt", got.UpdatedAt, got.CreatedAt)

		publish(t, s, got.ID)
		read, err := s.Request(t.Context(), got.ID)
		if err != nil {
			t.Fatalf("Request: %v", err)
		}
		checkRequest(t, "Request", read, &want)
		checkHistory(t, s, got.ID, []genpipe.StatusChange{{RequestID: got.ID, Status: genpipe.StatusReceived, At: got.CreatedAt}})
	}},
	{"IdempotencyKeyReturnsFirst", func(t *testing.T, s Store) {
		first := create(t, s, newRequest("key-1"))
		retry := newRequest("key-1")
		retry.Description = "a different body: the store still answers with the first"
		got, created, err := s.CreateRequest(t.Context(), retry)
		if err != nil || created {
			t.Fatalf("CreateRequest with a used key = created %v, %v; want the first request, not created", created, err)
		}
		checkRequest(t, "CreateRequest with a used key", got, first) // even though first is unpublished
		checkCode(t, "MarkPublished of the retry's id", s.MarkPublished(t.Context(), retry.ID), genpipe.ENOTFOUND)

		publish(t, s, first.ID)
		got, created, err = s.CreateRequest(t.Context(), newRequest("key-1"))
		if err != nil || created || got.ID != first.ID {
			t.Fatalf("CreateRequest after publishing = %v, created %v, %v; want request %s, not created", got, created, err, first.ID)
		}
	}},
	{"IdempotencyKeyConcurrent", func(t *testing.T, s Store) {
		const n = 10
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			ids     []string
			created int
		)
		for range n {
			wg.Go(func() {
				got, ok, err := s.CreateRequest(t.Context(), newRequest("key-concurrent"))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("CreateRequest: %v", err)
					return
				}
				if ok {
					created++
				}
				ids = append(ids, got.ID)
			})
		}
		wg.Wait()
		if created != 1 {
			t.Errorf("%d concurrent CreateRequest with one key created %d requests; want 1", n, created)
		}
		if slices.ContainsFunc(ids, func(id string) bool { return id != ids[0] }) {
			t.Errorf("concurrent CreateRequest with one key returned requests %v; want one", ids)
		}
	}},
	{"EmptyKeysNeverCollide", func(t *testing.T, s Store) {
		a, b := create(t, s, newRequest("")), create(t, s, newRequest(""))
		if a.ID == b.ID {
			t.Fatalf("two requests without a key share id %s", a.ID)
		}
	}},
	{"DifferentKeys", func(t *testing.T, s Store) {
		a, b := create(t, s, newRequest("key-a")), create(t, s, newRequest("key-b"))
		if a.ID == b.ID {
			t.Fatalf("two requests with different keys share id %s", a.ID)
		}
	}},
	{"RequiresID", func(t *testing.T, s Store) {
		r := newRequest("")
		r.ID = ""
		_, _, err := s.CreateRequest(t.Context(), r)
		checkCode(t, "CreateRequest without an id", err, genpipe.EINVALID)
	}},
}

var requestTests = append(notFoundTests("Request", Store.Request), []test{
	{"PublishedHasAllFields", func(t *testing.T, s Store) {
		in := newRequest("key-all-fields")
		in.Title, in.Description = "Ünïcödé title ✓", "line one\nline two, with 'quotes' and \"doubles\""
		r := create(t, s, in)
		publish(t, s, r.ID)
		got, err := s.Request(t.Context(), r.ID)
		if err != nil {
			t.Fatalf("Request: %v", err)
		}
		checkRequest(t, "Request", got, r)
		if got.Webhook != nil {
			t.Errorf("Request of a request without a delivery has Webhook %+v; want nil", got.Webhook)
		}
	}},
	{"CarriesWebhook", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		advance(t, s, r.ID, genpipe.StatusRejected)
		if got := read(t, s, r.ID); got.Webhook != nil {
			t.Errorf("Request before its delivery is queued has Webhook %+v; want nil", got.Webhook)
		}
		now := time.Now()
		enqueue(t, s, delivery(r.ID, genpipe.StatusRejected, now.Add(-time.Second)))
		d := claimWebhooks(t, s, now, time.Minute, 1)[0]
		d.State, d.Attempts, d.LastError = genpipe.WebhookFailed, 1, "the receiver answered 404 Not Found"
		updateWebhook(t, s, d)
		got := read(t, s, r.ID)
		if got.Webhook == nil {
			t.Fatal("Request of a request with a delivery has no Webhook")
		}
		checkDelivery(t, *got.Webhook, d)
	}},
}...)

// notFoundTests are the tests of a read (read names it) that must answer
// ENOTFOUND for a request that the client never got: one that does not
// exist, and one not published yet.
func notFoundTests[T any](read string, get func(s Store, ctx context.Context, id string) (T, error)) []test {
	return []test{
		{"Unknown", func(t *testing.T, s Store) {
			_, err := get(s, t.Context(), uuid.NewString())
			checkCode(t, read+" of an unknown request", err, genpipe.ENOTFOUND)
		}},
		{"Unpublished", func(t *testing.T, s Store) {
			r := create(t, s, newRequest("key"))
			_, err := get(s, t.Context(), r.ID)
			checkCode(t, read+" of an unpublished request", err, genpipe.ENOTFOUND)
		}},
	}
}

var markPublishedTests = []test{
	{"Twice", func(t *testing.T, s Store) {
		r := create(t, s, newRequest(""))
		publish(t, s, r.ID)
		publish(t, s, r.ID)
		if _, err := s.Request(t.Context(), r.ID); err != nil {
			t.Fatalf("Request: %v", err)
		}
	}},
	{"Unknown", func(t *testing.T, s Store) {
		checkCode(t, "MarkPublished of an unknown id", s.MarkPublished(t.Context(), uuid.NewString()), genpipe.ENOTFOUND)
	}},
}

var applyStatusTests = []test{
	{"Advances", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		at := r.CreatedAt
		for _, st := range []genpipe.Status{genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone} {
			at = at.Add(time.Second)
			c := genpipe.StatusChange{RequestID: r.ID, Status: st, At: at}
			if st == genpipe.StatusDone {
				c.Result = ptr(genpipe.ResultKeys(r.ID))
			}
			apply(t, s, c, true)
			got := read(t, s, r.ID)
			if got.Status != st {
				t.Fatalf("after ApplyStatus %s the request is %s", st, got.Status)
			}
			checkTime(t, "UpdatedAt after "+string(st), got.UpdatedAt, at)
			checkTime(t, "CreatedAt after "+string(st), got.CreatedAt, r.CreatedAt)
		}
	}},
	{"SkipsAhead", func(t *testing.T, s Store) {
		// Only the rank counts: a status may arrive before the one it follows.
		r := createPublished(t, s)
		advance(t, s, r.ID, genpipe.StatusGenerating)
		apply(t, s, change(r.ID, genpipe.StatusChecking), false)
		checkStatus(t, s, r.ID, genpipe.StatusGenerating)
	}},
	{"Redelivered", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		c := advance(t, s, r.ID, genpipe.StatusChecking)
		apply(t, s, c, false)
		apply(t, s, change(r.ID, genpipe.StatusReceived), false)
		checkStatus(t, s, r.ID, genpipe.StatusChecking)
	}},
	{"OlderIgnored", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		newer := advance(t, s, r.ID, genpipe.StatusGenerating)
		older := change(r.ID, genpipe.StatusChecking)
		older.At = newer.At.Add(time.Minute) // a late event, whatever its time
		apply(t, s, older, false)
		got := read(t, s, r.ID)
		if got.Status != genpipe.StatusGenerating {
			t.Fatalf("an older status moved the request back to %s", got.Status)
		}
		checkTime(t, "UpdatedAt", got.UpdatedAt, newer.At)
	}},
	{"TerminalIsFinal", func(t *testing.T, s Store) {
		terminal := []genpipe.Status{genpipe.StatusDone, genpipe.StatusRejected, genpipe.StatusFailed}
		for _, first := range terminal {
			r := createPublished(t, s)
			c := change(r.ID, first)
			c.Error = "first: " + string(first)
			if first == genpipe.StatusDone {
				c.Error, c.Result = "", ptr(genpipe.ResultKeys(r.ID))
			}
			apply(t, s, c, true)
			for _, then := range append(terminal, genpipe.StatusGenerating) {
				if first == genpipe.StatusFailed && (then == genpipe.StatusDone || then == genpipe.StatusRejected) {
					continue // a replayed failed request may still end; see FailedMayEndAfterReplay
				}
				later := change(r.ID, then)
				later.Error, later.Result = "later", &genpipe.Result{PNGKey: "other"}
				apply(t, s, later, false)
			}
			got := read(t, s, r.ID)
			if got.Status != first || got.Error != c.Error || !equalResult(got.Result, c.Result) {
				t.Errorf("after %s and later changes the request is %s, error %q, result %v; want it unchanged",
					first, got.Status, got.Error, got.Result)
			}
		}
	}},
	{"FailedMayEndAfterReplay", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		advance(t, s, r.ID, genpipe.StatusFailed)
		apply(t, s, change(r.ID, genpipe.StatusGenerating), false)
		done := change(r.ID, genpipe.StatusDone)
		done.Result = ptr(genpipe.ResultKeys(r.ID))
		apply(t, s, done, true)
		apply(t, s, change(r.ID, genpipe.StatusFailed), false)
		if got := read(t, s, r.ID); got.Status != genpipe.StatusDone || !equalResult(got.Result, done.Result) {
			t.Errorf("after failed and a replay's done the request is %s with %v; want done with its result", got.Status, got.Result)
		}
	}},
	{"DoneCarriesResult", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		if r := read(t, s, r.ID); r.Result != nil {
			t.Fatalf("a received request has result %v", r.Result)
		}
		res := genpipe.ResultKeys(r.ID)
		res.Slides = 3 // a deck: its count is kept with the keys
		apply(t, s, genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusDone, Result: &res, At: time.Now()}, true)
		got := read(t, s, r.ID)
		if got.Result == nil || *got.Result != res {
			t.Fatalf("done request has result %v; want %v", got.Result, res)
		}
		if h := history(t, s, r.ID); h[len(h)-1].Result == nil || *h[len(h)-1].Result != res {
			t.Fatalf("the history's done change carries %v; want %v", h[len(h)-1].Result, res)
		}
		if got.Error != "" {
			t.Fatalf("done request has error %q", got.Error)
		}
	}},
	{"RejectedAndFailedCarryError", func(t *testing.T, s Store) {
		for _, st := range []genpipe.Status{genpipe.StatusRejected, genpipe.StatusFailed} {
			r := createPublished(t, s)
			c := change(r.ID, st)
			c.Error = "the image shows no product (" + string(st) + ")"
			apply(t, s, c, true)
			got := read(t, s, r.ID)
			if got.Status != st || got.Error != c.Error || got.Result != nil {
				t.Errorf("%s request: status %s, error %q, result %v; want %s, %q, no result",
					st, got.Status, got.Error, got.Result, st, c.Error)
			}
		}
	}},
	{"BeforePublished", func(t *testing.T, s Store) {
		// The first event is in Kafka before MarkPublished returns, so the
		// pipeline may report on a request that is not published yet.
		r := create(t, s, newRequest(""))
		apply(t, s, change(r.ID, genpipe.StatusChecking), true)
		publish(t, s, r.ID)
		checkStatus(t, s, r.ID, genpipe.StatusChecking)
	}},
	{"Unknown", func(t *testing.T, s Store) {
		_, err := s.ApplyStatus(t.Context(), change(uuid.NewString(), genpipe.StatusChecking))
		checkCode(t, "ApplyStatus to an unknown request", err, genpipe.ENOTFOUND)
	}},
	{"InvalidStatus", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		for _, st := range []genpipe.Status{"", "finished"} {
			_, err := s.ApplyStatus(t.Context(), change(r.ID, st))
			checkCode(t, fmt.Sprintf("ApplyStatus %q", st), err, genpipe.EINVALID)
		}
		checkStatus(t, s, r.ID, genpipe.StatusReceived)
	}},
	{"ZeroAtIsNow", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		before := time.Now()
		apply(t, s, genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusChecking}, true)
		after := time.Now()
		checkBetween(t, "UpdatedAt", read(t, s, r.ID).UpdatedAt, before, after)
		h := history(t, s, r.ID)
		checkBetween(t, "History At", h[len(h)-1].At, before, after)
	}},
	{"TimesInUTC", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		at := time.Date(2031, 2, 3, 4, 5, 6, 789_123_456, time.FixedZone("UTC+5:30", 5*3600+1800))
		apply(t, s, genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusChecking, At: at}, true)
		checkTime(t, "UpdatedAt", read(t, s, r.ID).UpdatedAt, at)
		h := history(t, s, r.ID)
		checkTime(t, "History At", h[1].At, at)
	}},
	{"Concurrent", func(t *testing.T, s Store) {
		// Redeliveries race each other and a reader: every status applies
		// at most once, in rank order, and the request ends done.
		r := createPublished(t, s)
		statuses := []genpipe.Status{genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			applied = map[genpipe.Status]int{}
		)
		for i := range 10 {
			wg.Go(func() {
				for j := range statuses {
					st := statuses[(i+j)%len(statuses)]
					c := change(r.ID, st)
					if st == genpipe.StatusDone {
						c.Result = ptr(genpipe.ResultKeys(r.ID))
					}
					ok, err := s.ApplyStatus(t.Context(), c)
					if err != nil {
						t.Errorf("ApplyStatus %s: %v", st, err)
						return
					}
					if ok {
						mu.Lock()
						applied[st]++
						mu.Unlock()
					}
					if _, err := s.Request(t.Context(), r.ID); err != nil {
						t.Errorf("Request: %v", err)
					}
				}
			})
		}
		wg.Wait()
		if applied[genpipe.StatusDone] != 1 {
			t.Errorf("done applied %d times; want 1", applied[genpipe.StatusDone])
		}
		var want []genpipe.Status
		for _, st := range append([]genpipe.Status{genpipe.StatusReceived}, statuses...) {
			if applied[st] > 1 {
				t.Errorf("%s applied %d times", st, applied[st])
			}
			if st == genpipe.StatusReceived || applied[st] == 1 {
				want = append(want, st)
			}
		}
		var got []genpipe.Status
		for _, c := range history(t, s, r.ID) {
			got = append(got, c.Status)
		}
		if !slices.Equal(got, want) {
			t.Errorf("history %v; want the applied changes %v", got, want)
		}
		checkStatus(t, s, r.ID, genpipe.StatusDone)
	}},
}

var historyTests = append(notFoundTests("History", Store.History), []test{
	{"OldestFirst", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		at := r.CreatedAt.Add(time.Second)
		res := genpipe.ResultKeys(r.ID)
		want := []genpipe.StatusChange{{RequestID: r.ID, Status: genpipe.StatusReceived, At: r.CreatedAt}}
		for _, c := range []struct {
			genpipe.StatusChange
			applied bool
		}{
			{genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusChecking, At: at}, true},
			{genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusChecking, At: at.Add(time.Second)}, false},
			{genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusGenerating, At: at.Add(2 * time.Second)}, true},
			{genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusReceived, At: at.Add(3 * time.Second)}, false},
			{genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusDone, Result: &res, At: at.Add(4 * time.Second)}, true},
			{genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusFailed, Error: "late", At: at.Add(5 * time.Second)}, false},
		} {
			apply(t, s, c.StatusChange, c.applied)
			if c.applied {
				want = append(want, c.StatusChange)
			}
		}
		checkHistory(t, s, r.ID, want)
	}},
	{"ApplicationOrder", func(t *testing.T, s Store) {
		// Oldest first means in the order applied, even when the events'
		// clocks disagree (each worker stamps its own).
		r := createPublished(t, s)
		c := genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusRejected, Error: "no image",
			At: r.CreatedAt.Add(-time.Minute)}
		apply(t, s, c, true)
		checkHistory(t, s, r.ID, []genpipe.StatusChange{{RequestID: r.ID, Status: genpipe.StatusReceived, At: r.CreatedAt}, c})
	}},
}...)

// webhookTests pin down the outbox as its claimer sees it: through
// ClaimDueWebhooks, which returns what is due and keeps it from the next
// claims for its lease (webhookClaimTests pin down the claims themselves).
var webhookTests = []test{
	{"EnqueueOnce", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		now := time.Now()
		d := delivery(r.ID, genpipe.StatusDone, now.Add(-time.Second))
		enqueue(t, s, d)
		again := d
		again.URL, again.NextAttemptAt = "https://other.example/hook", now.Add(-time.Hour)
		enqueue(t, s, again)
		checkDue(t, s, now.Add(-2*time.Second), 10, nil) // the second did not make it due earlier
		due := claimWebhooks(t, s, now, time.Minute, 10)
		if len(due) != 1 {
			t.Fatalf("two EnqueueWebhook of one (request, status) gave %d due deliveries; want 1", len(due))
		}
		got := due[0]
		if got.ID == 0 {
			t.Errorf("delivery has no ID")
		}
		d.ID, d.NextAttemptAt = got.ID, now.Add(time.Minute) // claimed for a minute
		checkDelivery(t, got, d)
	}},
	{"OnePerStatus", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		now := time.Now()
		enqueue(t, s, delivery(r.ID, genpipe.StatusChecking, now.Add(-2*time.Second)))
		enqueue(t, s, delivery(r.ID, genpipe.StatusDone, now.Add(-time.Second)))
		if due := claimWebhooks(t, s, now, time.Minute, 10); len(due) != 2 || due[0].ID == due[1].ID {
			t.Fatalf("deliveries of two statuses: %v; want two", due)
		}
	}},
	{"Defaults", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		before := time.Now()
		enqueue(t, s, genpipe.WebhookDelivery{RequestID: r.ID, Status: genpipe.StatusDone, URL: r.WebhookURL})
		after := time.Now()
		// Due from its creation on, not before: NextAttemptAt is CreatedAt.
		checkDue(t, s, before.Add(-time.Millisecond), 10, nil)
		due := claimWebhooks(t, s, after.Add(time.Millisecond), time.Minute, 10)
		if len(due) != 1 {
			t.Fatalf("a delivery with zero times is not due: %v", due)
		}
		if due[0].State != genpipe.WebhookPending || due[0].Attempts != 0 {
			t.Errorf("delivery state %q, attempts %d; want pending, 0", due[0].State, due[0].Attempts)
		}
		checkBetween(t, "CreatedAt", due[0].CreatedAt, before, after)
	}},
	{"DueOrderAndLimit", func(t *testing.T, s Store) {
		now := time.Now()
		var ids []string
		for _, ago := range []time.Duration{time.Minute, 3 * time.Minute, 2 * time.Minute, -time.Minute, 0} {
			r := createPublished(t, s)
			d := delivery(r.ID, genpipe.StatusDone, now.Add(-ago))
			d.CreatedAt = now.Add(-time.Hour) // all created together: due order is NextAttemptAt order
			enqueue(t, s, d)
			ids = append(ids, r.ID)
		}
		// Longest overdue first (not first queued); what is due earlier is
		// due; the one due exactly now is; the one due in a minute is not.
		checkDue(t, s, now, 2, []string{ids[1], ids[2]})
		checkDue(t, s, now.Add(-30*time.Second), 10, ids[:1])
		checkDue(t, s, now, 10, ids[4:5])
		checkDue(t, s, now.Add(2*time.Minute), 10, ids[3:4])
	}},
	{"DueOnlyPending", func(t *testing.T, s Store) {
		now := time.Now()
		var ids []string
		for _, state := range []genpipe.WebhookState{genpipe.WebhookDelivered, genpipe.WebhookPending, genpipe.WebhookAbandoned} {
			r := createPublished(t, s)
			d := delivery(r.ID, genpipe.StatusDone, now.Add(-time.Minute))
			d.State = state
			enqueue(t, s, d)
			ids = append(ids, r.ID)
		}
		checkDue(t, s, now, 10, ids[1:2])
	}},
	{"EndedNeverDue", func(t *testing.T, s Store) {
		now := time.Now()
		for _, state := range []genpipe.WebhookState{genpipe.WebhookDelivered, genpipe.WebhookAbandoned, genpipe.WebhookFailed} {
			r := createPublished(t, s)
			enqueue(t, s, delivery(r.ID, genpipe.StatusDone, now.Add(-time.Minute)))
			due := claimWebhooks(t, s, now, time.Minute, 10)
			if len(due) != 1 {
				t.Fatalf("due: %v; want the new delivery", due)
			}
			d := due[0]
			d.State, d.Attempts, d.LastError = state, 1, ""
			if err := s.UpdateWebhook(t.Context(), d); err != nil {
				t.Fatalf("UpdateWebhook %s: %v", state, err)
			}
			checkDue(t, s, now.Add(24*time.Hour), 10, nil)
		}
	}},
	{"PendingDeferred", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		now := time.Now()
		enqueue(t, s, delivery(r.ID, genpipe.StatusRejected, now.Add(-time.Second)))
		d := claimWebhooks(t, s, now, time.Minute, 1)[0]
		for attempt := 1; attempt <= 3; attempt++ {
			d.Attempts = attempt
			d.LastError = fmt.Sprintf("webhook POST: receiver answered 503 (attempt %d)", attempt)
			d.NextAttemptAt = now.Add(time.Duration(attempt) * time.Minute)
			if err := s.UpdateWebhook(t.Context(), d); err != nil {
				t.Fatalf("UpdateWebhook: %v", err)
			}
			checkDue(t, s, d.NextAttemptAt.Add(-time.Millisecond), 10, nil)
			due := claimWebhooks(t, s, d.NextAttemptAt, time.Minute, 10)
			if len(due) != 1 {
				t.Fatalf("deferred delivery not due at its NextAttemptAt: %v", due)
			}
			want := d
			want.NextAttemptAt = d.NextAttemptAt.Add(time.Minute) // claimed for a minute
			checkDelivery(t, due[0], want)
		}
	}},
	{"EnqueueUnknownRequest", func(t *testing.T, s Store) {
		err := s.EnqueueWebhook(t.Context(), delivery(uuid.NewString(), genpipe.StatusDone, time.Now()))
		checkCode(t, "EnqueueWebhook for an unknown request", err, genpipe.ENOTFOUND)
	}},
	{"UpdateUnknown", func(t *testing.T, s Store) {
		d := delivery(uuid.NewString(), genpipe.StatusDone, time.Now())
		d.ID = 1 << 40
		checkCode(t, "UpdateWebhook of an unknown delivery", s.UpdateWebhook(t.Context(), d), genpipe.ENOTFOUND)
	}},
	{"Invalid", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		now := time.Now()
		bad := delivery(r.ID, genpipe.StatusDone, now)
		bad.State = "lost"
		checkCode(t, "EnqueueWebhook in state lost", s.EnqueueWebhook(t.Context(), bad), genpipe.EINVALID)
		bad = delivery(r.ID, "finished", now)
		checkCode(t, "EnqueueWebhook of status finished", s.EnqueueWebhook(t.Context(), bad), genpipe.EINVALID)

		enqueue(t, s, delivery(r.ID, genpipe.StatusDone, now))
		d := claimWebhooks(t, s, now, time.Minute, 1)[0]
		d.State = "lost"
		checkCode(t, "UpdateWebhook to state lost", s.UpdateWebhook(t.Context(), d), genpipe.EINVALID)
	}},
}

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

var pingTests = []test{
	{"Ping", func(t *testing.T, s Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
}

// newRequest returns a fresh request with a new UUID and all fields set.
func newRequest(idempotencyKey string) *genpipe.Request {
	objectID := uuid.NewString()
	return &genpipe.Request{
		ID: uuid.NewString(),
		Job: genpipe.Job{ObjectID: objectID, Style: "corporate", Title: "Q3 results", Description: "our best quarter",
			Image: genpipe.UploadKey("", objectID)},
		WebhookURL:     "https://hooks.example/genpipe",
		IdempotencyKey: idempotencyKey,
		Status:         genpipe.StatusReceived,
	}
}

func create(t *testing.T, s Store, r *genpipe.Request) *genpipe.Request {
	t.Helper()
	got, created, err := s.CreateRequest(t.Context(), r)
	if err != nil || !created {
		t.Fatalf("CreateRequest = created %v, %v; want created", created, err)
	}
	return got
}

func publish(t *testing.T, s Store, id string) {
	t.Helper()
	if err := s.MarkPublished(t.Context(), id); err != nil {
		t.Fatalf("MarkPublished: %v", err)
	}
}

func createPublished(t *testing.T, s Store) *genpipe.Request {
	t.Helper()
	r := create(t, s, newRequest(""))
	publish(t, s, r.ID)
	return r
}

func read(t *testing.T, s Store, id string) *genpipe.Request {
	t.Helper()
	r, err := s.Request(t.Context(), id)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	return r
}

func history(t *testing.T, s Store, id string) []genpipe.StatusChange {
	t.Helper()
	h, err := s.History(t.Context(), id)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	return h
}

func change(id string, st genpipe.Status) genpipe.StatusChange {
	return genpipe.StatusChange{RequestID: id, Status: st, At: time.Now()}
}

func apply(t *testing.T, s Store, c genpipe.StatusChange, want bool) {
	t.Helper()
	applied, err := s.ApplyStatus(t.Context(), c)
	if err != nil {
		t.Fatalf("ApplyStatus %s: %v", c.Status, err)
	}
	if applied != want {
		t.Fatalf("ApplyStatus %s: applied = %v; want %v", c.Status, applied, want)
	}
}

// advance applies a new change of request id to st, which must apply, and
// returns the change.
func advance(t *testing.T, s Store, id string, st genpipe.Status) genpipe.StatusChange {
	t.Helper()
	c := change(id, st)
	apply(t, s, c, true)
	return c
}

func checkStatus(t *testing.T, s Store, id string, want genpipe.Status) {
	t.Helper()
	if got := read(t, s, id).Status; got != want {
		t.Fatalf("request status %s; want %s", got, want)
	}
}

func checkRequest(t *testing.T, what string, got, want *genpipe.Request) {
	t.Helper()
	if got.ID != want.ID || got.Job != want.Job || got.WebhookURL != want.WebhookURL ||
		got.IdempotencyKey != want.IdempotencyKey || got.Share != want.Share.Normalized() || got.Status != want.Status ||
		got.Error != want.Error || !equalResult(got.Result, want.Result) {
		t.Errorf("%s = %+v; want %+v", what, *got, *want)
	}
	checkTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

func checkHistory(t *testing.T, s Store, id string, want []genpipe.StatusChange) {
	t.Helper()
	got := history(t, s, id)
	if len(got) != len(want) {
		t.Fatalf("History = %v; want %v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.RequestID != w.RequestID || g.Status != w.Status || g.Error != w.Error || !equalResult(g.Result, w.Result) {
			t.Errorf("History[%d] = %+v; want %+v", i, g, w)
		}
		checkTime(t, fmt.Sprintf("History[%d].At", i), g.At, w.At)
	}
}

func delivery(id string, st genpipe.Status, next time.Time) genpipe.WebhookDelivery {
	return genpipe.WebhookDelivery{RequestID: id, Status: st, URL: "https://hooks.example/genpipe",
		State: genpipe.WebhookPending, NextAttemptAt: next, CreatedAt: next}
}

func enqueue(t *testing.T, s Store, d genpipe.WebhookDelivery) {
	t.Helper()
	if err := s.EnqueueWebhook(t.Context(), d); err != nil {
		t.Fatalf("EnqueueWebhook: %v", err)
	}
}

// checkDue checks that a claim at now of at most limit deliveries returns
// those of these requests (in any order), and so leaves them to the claim
// for an hour.
func checkDue(t *testing.T, s Store, now time.Time, limit int, wantRequests []string) {
	t.Helper()
	var got []string
	for _, d := range claimWebhooks(t, s, now, time.Hour, limit) {
		got = append(got, d.RequestID)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(wantRequests))
	if !slices.Equal(got, want) {
		t.Errorf("ClaimDueWebhooks(%v, %d) = deliveries of %v; want %v", now.UTC(), limit, got, want)
	}
}

func checkDelivery(t *testing.T, got, want genpipe.WebhookDelivery) {
	t.Helper()
	if got.ID != want.ID || got.RequestID != want.RequestID || got.Status != want.Status || got.URL != want.URL ||
		got.State != want.State || got.Attempts != want.Attempts || got.LastError != want.LastError {
		t.Errorf("delivery = %+v; want %+v", got, want)
	}
	checkTime(t, "NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
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

// checkTime checks that got is want, in UTC, to the millisecond at least.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s %v is not in UTC", what, got)
	}
	if d := got.Sub(want); d <= -time.Millisecond || d >= time.Millisecond {
		t.Errorf("%s = %v; want %v", what, got, want.UTC())
	}
}

// checkBetween checks that got is in [before, after], in UTC, to the millisecond.
func checkBetween(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s %v is not in UTC", what, got)
	}
	if got.Before(before.Add(-time.Millisecond)) || got.After(after.Add(time.Millisecond)) {
		t.Errorf("%s = %v; want between %v and %v", what, got, before.UTC(), after.UTC())
	}
}

func checkCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := genpipe.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q); want code %q", what, err, got, code)
	}
}

func equalResult(a, b *genpipe.Result) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

func ptr[T any](v T) *T { return &v }
