package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlstore"
	"github.com/genpipe/genpipe/storetest"
)

// together returns a storetest.Gate for s: it holds s's batches, waits
// until the calls launched are all queued, then releases them, so that
// they run as one batch.
func together(s *sqlstore.Store) storetest.Gate {
	return func() func(calls int) {
		release := s.HoldBatches()
		return func(calls int) {
			for s.QueuedCalls() < calls {
				time.Sleep(time.Millisecond)
			}
			release()
		}
	}
}

// On PostgreSQL, concurrent creates run as one statement, and each call
// still gets its own outcome: new rows, a key stored before, two calls
// with one key, a retry with one id and key (storetest.ConcurrentCreates);
// with two calls of one id and a call with an id stored before among them
// the statement fails, and each call runs on its own.
func TestPostgresBatchedCreates(t *testing.T) {
	for _, idConflicts := range []bool{false, true} {
		s := open(t, postgres.fresh(t))
		var before int64
		gate := together(s)
		storetest.ConcurrentCreates(t, s, idConflicts, func() func(int) {
			before, _ = s.Batches() // after the setup's creates
			return gate()
		})
		if after, _ := s.Batches(); after-before != 1 {
			t.Errorf("id conflicts %v: the concurrent creates took %d batches; want 1", idConflicts, after-before)
		}
	}
}

// On PostgreSQL, concurrent marks run as one statement; the unknown id
// among them alone is not found.
func TestPostgresBatchedMarks(t *testing.T) {
	s := open(t, postgres.fresh(t))
	var before int64
	gate := together(s)
	storetest.ConcurrentMarks(t, s, func() func(int) {
		_, before = s.Batches()
		return gate()
	})
	if _, after := s.Batches(); after-before != 1 {
		t.Errorf("the concurrent marks took %d batches; want 1", after-before)
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
