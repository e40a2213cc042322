package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
)

// Concurrent submissions: a store may run concurrent calls of one kind
// together (PostgreSQL coalesces them into one statement), and each call
// must still get the outcome it would get alone.
var concurrentTests = []test{
	{"Creates", func(t *testing.T, s Store) { ConcurrentCreates(t, s, false, nil) }},
	{"CreatesWithIDConflicts", func(t *testing.T, s Store) { ConcurrentCreates(t, s, true, nil) }},
	{"Marks", func(t *testing.T, s Store) { ConcurrentMarks(t, s, nil) }},
	{"CreatesAndMarks", func(t *testing.T, s Store) { ConcurrentCreatesAndMarks(t, s, nil) }},
}

// A Gate, unless nil, holds a store's concurrent calls back, for the
// store's own tests to make them run together: ConcurrentCreates,
// ConcurrentMarks and ConcurrentCreatesAndMarks call it once their setup is done, before they start
// their concurrent calls, and call what it returns with the number of
// calls once all are started; that returns once they may run.
type Gate func() (launched func(calls int))

// hold calls g, unless nil, and returns what the calls' launcher calls
// once all are started.
func (g Gate) hold() (launched func(calls int)) {
	if g == nil {
		return func(int) {}
	}
	return g()
}

// ConcurrentCreates runs CreateClaimed and CreateRequest calls from as
// many goroutines at once: new requests, with and without idempotency
// keys; two calls with one new key; a call with a key stored before; two
// calls with one new id and key (a retry); and, if idConflicts, two calls
// with one new id and different keys, and a call with an id stored
// before. It checks that each gets its own outcome (created; the twin of
// its key; ECONFLICT for an id taken) and that every stored request has
// its one received change.
func ConcurrentCreates(t *testing.T, s Store, idConflicts bool, gate Gate) {
	ctx := t.Context()
	taken := create(t, s, newRequest("taken-"+uuid.NewString()))
	stored := create(t, s, newRequest(""))

	type call struct {
		r       *genpipe.Request
		claimed bool // CreateClaimed, else CreateRequest
		got     *genpipe.Request
		created bool
		err     error
	}
	var calls []*call
	add := func(r *genpipe.Request, claimed bool) { calls = append(calls, &call{r: r, claimed: claimed}) }
	for i := range 8 {
		add(newRequest(""), i%2 == 0)
	}
	for range 4 {
		add(newRequest("new-"+uuid.NewString()), true)
	}
	twinKey := "twin-" + uuid.NewString()
	twins := len(calls)
	add(newRequest(twinKey), true)
	add(newRequest(twinKey), true)
	retry := len(calls)
	add(newRequest(taken.IdempotencyKey), true)
	// Two calls with one new id and one key: the second is a retry of the
	// first, and gets it.
	retried := len(calls)
	add(newRequest("retried-"+uuid.NewString()), true)
	add(newRequest(""), true)
	calls[retried+1].r.ID, calls[retried+1].r.IdempotencyKey = calls[retried].r.ID, calls[retried].r.IdempotencyKey
	sameID, storedAt := -1, -1
	if idConflicts {
		sameID = len(calls)
		add(newRequest(""), true)
		add(newRequest(""), false)
		calls[sameID+1].r.ID = calls[sameID].r.ID
		storedAt = len(calls)
		r := newRequest("")
		r.ID = stored.ID
		add(r, true)
	}

	launched := gate.hold()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() {
			if c.claimed {
				c.got, c.created, c.err = s.CreateClaimed(ctx, c.r, time.Minute)
			} else {
				c.got, c.created, c.err = s.CreateRequest(ctx, c.r)
			}
		})
	}
	launched(len(calls))
	wg.Wait()

	// The calls that each create a request of their own.
	created := map[string]bool{}
	for i, c := range calls {
		switch {
		case i == twins || i == twins+1 || i == retried || i == retried+1 || i == retry ||
			(idConflicts && (i == sameID || i == sameID+1 || i == storedAt)):
		case c.err != nil || !c.created:
			t.Errorf("create %d: created %v, %v; want created", i, c.created, c.err)
		case c.got.ID != c.r.ID || c.got.IdempotencyKey != c.r.IdempotencyKey || c.got.ObjectID != c.r.ObjectID:
			t.Errorf("create %d returned request %s (key %q); want %s (key %q)", i, c.got.ID, c.got.IdempotencyKey, c.r.ID, c.r.IdempotencyKey)
		default:
			created[c.r.ID] = true
		}
	}
	// Two calls with one new key: one creates, the other gets its twin.
	a, b := calls[twins], calls[twins+1]
	if a.err != nil || b.err != nil {
		t.Errorf("two creates with one key: %v, %v", a.err, b.err)
	} else if a.created == b.created || a.got.ID != b.got.ID {
		t.Errorf("two creates with one key: created %v and %v, ids %s and %s; want one created, the same id",
			a.created, b.created, a.got.ID, b.got.ID)
	} else {
		created[a.got.ID] = true
	}
	a, b = calls[retried], calls[retried+1]
	if a.err != nil || b.err != nil {
		t.Errorf("two creates with one id and key: %v, %v", a.err, b.err)
	} else if a.created == b.created || a.got.ID != a.r.ID || b.got.ID != a.r.ID {
		t.Errorf("two creates with one id and key: created %v and %v, ids %s and %s; want one created, both %s",
			a.created, b.created, a.got.ID, b.got.ID, a.r.ID)
	} else {
		created[a.r.ID] = true
	}
	// A key stored before: its request, nothing created.
	if c := calls[retry]; c.err != nil || c.created || c.got.ID != taken.ID {
		t.Errorf("create with a stored key: %+v, created %v, %v; want request %s, not created", c.got, c.created, c.err, taken.ID)
	}
	if idConflicts {
		// Two calls with one new id: one creates, the other ECONFLICT.
		a, b = calls[sameID], calls[sameID+1]
		if winner, loser := a, b; (a.err == nil) == (b.err == nil) {
			t.Errorf("two creates with one id: %v and %v; want one created, one %s", a.err, b.err, genpipe.ECONFLICT)
		} else {
			if a.err != nil {
				winner, loser = b, a
			}
			checkCode(t, "the second create of one id", loser.err, genpipe.ECONFLICT)
			if !winner.created {
				t.Errorf("the first create of one id: created false")
			}
			created[winner.r.ID] = true
		}
		checkCode(t, "create with a stored id", calls[storedAt].err, genpipe.ECONFLICT)
	}

	// Every request stored has its one received change, the calls' and
	// those stored before alike.
	created[taken.ID], created[stored.ID] = true, true
	for id := range created {
		publish(t, s, id)
		if h := history(t, s, id); len(h) != 1 || h[0].Status != genpipe.StatusReceived {
			t.Errorf("history of %s: %+v; want one received change", id, h)
		}
	}
}

// ConcurrentMarks runs MarkPublished from as many goroutines at once: on
// new requests, one of them twice, and on an unknown id, which alone gets
// ENOTFOUND.
func ConcurrentMarks(t *testing.T, s Store, gate Gate) {
	var ids []string
	for range 8 {
		ids = append(ids, create(t, s, newRequest("")).ID)
	}
	ids = append(ids, ids[0]) // marking twice is harmless
	unknown := len(ids)
	ids = append(ids, uuid.NewString())
	errs := make([]error, len(ids))
	launched := gate.hold()
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = s.MarkPublished(t.Context(), id) })
	}
	launched(len(ids))
	wg.Wait()
	for i, err := range errs {
		if i == unknown {
			checkCode(t, "MarkPublished of an unknown id among others", err, genpipe.ENOTFOUND)
			continue
		}
		if err != nil {
			t.Errorf("MarkPublished %d: %v", i, err)
		} else {
			read(t, s, ids[i])
		}
	}
}

// ConcurrentCreatesAndMarks runs CreateClaimed, CreateRequest and
// MarkPublished from as many goroutines at once, as the submissions of a
// busy API do (PostgreSQL runs them in one statement): new requests, with
// and without keys, a key stored before, marks of stored requests, one
// twice, and of an unknown id. Each call gets its own outcome; the
// requests marked are visible, those created are not until marked, and
// each has its one received change.
func ConcurrentCreatesAndMarks(t *testing.T, s Store, gate Gate) {
	ctx := t.Context()
	taken := create(t, s, newRequest("taken-"+uuid.NewString()))
	var stored []string
	for range 6 {
		stored = append(stored, create(t, s, newRequest("")).ID)
	}
	marks := append(slices.Clone(stored), stored[0], uuid.NewString()) // one twice, one unknown
	unknown := len(marks) - 1
	var creates []*genpipe.Request
	for i := range 6 {
		key := ""
		if i%2 == 1 {
			key = "new-" + uuid.NewString()
		}
		creates = append(creates, newRequest(key))
	}
	creates = append(creates, newRequest(taken.IdempotencyKey))
	retry := len(creates) - 1

	markErrs := make([]error, len(marks))
	type outcome struct {
		got     *genpipe.Request
		created bool
		err     error
	}
	created := make([]outcome, len(creates))
	launched := gate.hold()
	var wg sync.WaitGroup
	for i, id := range marks {
		wg.Go(func() { markErrs[i] = s.MarkPublished(ctx, id) })
	}
	for i, r := range creates {
		wg.Go(func() {
			c := &created[i]
			if i%3 == 0 {
				c.got, c.created, c.err = s.CreateRequest(ctx, r)
			} else {
				c.got, c.created, c.err = s.CreateClaimed(ctx, r, time.Minute)
			}
		})
	}
	launched(len(marks) + len(creates))
	wg.Wait()

	for i, err := range markErrs {
		switch {
		case i == unknown:
			checkCode(t, "MarkPublished of an unknown id among creates", err, genpipe.ENOTFOUND)
		case err != nil:
			t.Errorf("MarkPublished %d among creates: %v", i, err)
		default:
			read(t, s, marks[i])
		}
	}
	for i, c := range created {
		switch {
		case i == retry:
			if c.err != nil || c.created || c.got.ID != taken.ID {
				t.Errorf("create with a stored key among marks: %+v, created %v, %v; want request %s, not created", c.got, c.created, c.err, taken.ID)
			}
		case c.err != nil || !c.created || c.got.ID != creates[i].ID:
			t.Errorf("create %d among marks: created %v, %v; want request %s created", i, c.created, c.err, creates[i].ID)
		default:
			if _, err := s.Request(ctx, c.got.ID); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
				t.Errorf("Request of %s, created among marks, before its mark: %v; want %s", c.got.ID, err, genpipe.ENOTFOUND)
			}
			publish(t, s, c.got.ID)
			if h := history(t, s, c.got.ID); len(h) != 1 || h[0].Status != genpipe.StatusReceived {
				t.Errorf("history of %s: %+v; want one received change", c.got.ID, h)
			}
		}
	}
}
