package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlstore"
	"github.com/genpipe/genpipe/storetest"
)

// together returns a storetest.Gate for s: it holds s's batches, waits
// until the calls launched are all queued, then releases them, so that
// they run as one batch; check, after the calls, reports it if they did
// not.
func together(t *testing.T, s *sqlstore.Store) (gate storetest.Gate, check func(what string)) {
	launched := 0
	gate = func() func(calls int) {
		release := s.HoldBatches()
		return func(calls int) {
			for s.QueuedCalls() < calls {
				time.Sleep(time.Millisecond)
			}
			launched = calls
			release()
		}
	}
	check = func(what string) {
		t.Helper()
		if got := s.LargestBatch(); got != launched {
			t.Errorf("%s: the largest batch took %d calls; want all %d in one", what, got, launched)
		}
	}
	return gate, check
}

// On PostgreSQL, concurrent creates run as one statement, and each call
// still gets its own outcome: new rows, a key stored before, two calls
// with one key, a retry with one id and key (storetest.ConcurrentCreates);
// with two calls of one id and a call with an id stored before among them
// the statement fails, and each call runs on its own.
func TestPostgresBatchedCreates(t *testing.T) {
	for _, idConflicts := range []bool{false, true} {
		s := open(t, postgres.fresh(t))
		gate, check := together(t, s)
		storetest.ConcurrentCreates(t, s, idConflicts, gate)
		check(fmt.Sprintf("concurrent creates, id conflicts %v", idConflicts))
	}
}

// On PostgreSQL, concurrent marks run as one statement; the unknown id
// among them alone is not found.
func TestPostgresBatchedMarks(t *testing.T) {
	s := open(t, postgres.fresh(t))
	gate, check := together(t, s)
	storetest.ConcurrentMarks(t, s, gate)
	check("concurrent marks")
}

// On PostgreSQL, concurrent creates and marks run as one statement, and
// each call gets its own outcome (storetest.ConcurrentCreatesAndMarks).
func TestPostgresBatchedCreatesAndMarks(t *testing.T) {
	s := open(t, postgres.fresh(t))
	gate, check := together(t, s)
	storetest.ConcurrentCreatesAndMarks(t, s, gate)
	check("concurrent creates and marks")
}

// A mark that runs in one statement with its request's create does not
// find it (the statement's update does not see its insert), and says so:
// the request stays unpublished until marked again.
func TestPostgresMarkInTheCreatesStatement(t *testing.T) {
	s := open(t, postgres.fresh(t))
	ctx := t.Context()
	r := newRequest()
	release := s.HoldBatches()
	createErr, markErr := make(chan error, 1), make(chan error, 1)
	go func() {
		_, _, err := s.CreateClaimed(ctx, r, time.Minute)
		createErr <- err
	}()
	for s.QueuedCalls() < 1 {
		time.Sleep(time.Millisecond)
	}
	go func() { markErr <- s.MarkPublished(ctx, r.ID) }()
	for s.QueuedCalls() < 2 {
		time.Sleep(time.Millisecond)
	}
	release()
	if err := <-createErr; err != nil {
		t.Fatalf("create: %v", err)
	}
	checkCode(t, "MarkPublished in the statement that creates the request", <-markErr, genpipe.ENOTFOUND)
	if got := s.LargestBatch(); got != 2 {
		t.Errorf("the create and the mark: the largest batch took %d calls; want both in one", got)
	}
	if _, err := s.Request(ctx, r.ID); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
		t.Errorf("Request before a mark that found it: %v; want %s", err, genpipe.ENOTFOUND)
	}
	if err := s.MarkPublished(ctx, r.ID); err != nil {
		t.Fatalf("MarkPublished after the create: %v", err)
	}
	if _, err := s.Request(ctx, r.ID); err != nil {
		t.Errorf("Request after its mark: %v", err)
	}
}

// A caller that goes away while its call waits for a batch gets its
// context's error at once, and its request is not stored; the others of
// the batch are.
func TestPostgresBatchCallerGone(t *testing.T) {
	s := open(t, postgres.fresh(t))
	ctx := t.Context()
	release := s.HoldBatches()
	gone, leave := context.WithCancel(ctx)
	left, stays := newRequest(), newRequest()
	leftErr, staysErr := make(chan error, 1), make(chan error, 1)
	go func() {
		_, _, err := s.CreateClaimed(gone, left, time.Minute)
		leftErr <- err
	}()
	go func() {
		_, _, err := s.CreateClaimed(ctx, stays, time.Minute)
		staysErr <- err
	}()
	for s.QueuedCalls() < 2 {
		time.Sleep(time.Millisecond)
	}
	leave()
	if err := <-leftErr; !errors.Is(err, context.Canceled) {
		t.Errorf("create by a caller that went away while queued: %v; want context.Canceled", err)
	}
	release()
	if err := <-staysErr; err != nil {
		t.Fatalf("create queued with it: %v", err)
	}
	if err := s.MarkPublished(ctx, stays.ID); err != nil {
		t.Errorf("MarkPublished of the request queued with it: %v", err)
	}
	checkCode(t, "MarkPublished of the request whose caller went away", s.MarkPublished(ctx, left.ID), genpipe.ENOTFOUND)
}
