package storetest

import (
	"testing"

	"github.com/genpipe/genpipe"
)

// What the API's admission control and API keys rely on: Backlog counts
// exactly the accepted requests not yet started, and a request belongs to
// its Owner, whose idempotency keys are its own.

var backlogTests = []test{
	{"Empty", func(t *testing.T, s Store) {
		checkBacklog(t, s, 0)
	}},
	{"CountsPublishedReceived", func(t *testing.T, s Store) {
		var ids []string
		for range 4 {
			ids = append(ids, createPublished(t, s).ID)
		}
		create(t, s, newRequest("")) // not published: the client got no 202, nothing is queued
		checkBacklog(t, s, 4)

		apply(t, s, change(ids[0], genpipe.StatusChecking), true)
		apply(t, s, change(ids[1], genpipe.StatusRejected), true)
		apply(t, s, change(ids[2], genpipe.StatusFailed), true)
		checkBacklog(t, s, 1)
	}},
	{"StartedBeforePublished", func(t *testing.T, s Store) {
		// The pipeline may start a request before MarkPublished returns: it
		// is no longer waiting once published.
		r := create(t, s, newRequest(""))
		apply(t, s, change(r.ID, genpipe.StatusChecking), true)
		publish(t, s, r.ID)
		checkBacklog(t, s, 0)
	}},
}

var ownerTests = []test{
	{"Stored", func(t *testing.T, s Store) {
		in := newRequest("")
		in.Owner = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
		got := create(t, s, in)
		if got.Owner != in.Owner {
			t.Errorf("CreateRequest Owner = %q; want %q", got.Owner, in.Owner)
		}
		publish(t, s, got.ID)
		if read := read(t, s, got.ID); read.Owner != in.Owner {
			t.Errorf("Request Owner = %q; want %q", read.Owner, in.Owner)
		}
	}},
	{"IdempotencyKeyPerOwner", func(t *testing.T, s Store) {
		// One key used by two owners (and by no owner) is three requests; a
		// retry finds its own owner's.
		byOwner := map[string]string{}
		for _, owner := range []string{"owner-a", "owner-b", ""} {
			r := newRequest("shared-key")
			r.Owner = owner
			byOwner[owner] = create(t, s, r).ID
		}
		if byOwner["owner-a"] == byOwner["owner-b"] || byOwner["owner-a"] == byOwner[""] {
			t.Fatalf("owners share requests: %v", byOwner)
		}
		for owner, id := range byOwner {
			retry := newRequest("shared-key")
			retry.Owner = owner
			got, created, err := s.CreateRequest(t.Context(), retry)
			if err != nil || created || got.ID != id || got.Owner != owner {
				t.Errorf("retry of owner %q = %+v, created %v, %v; want request %s, not created", owner, got, created, err, id)
			}
		}
	}},
}

func checkBacklog(t *testing.T, s Store, want int) {
	t.Helper()
	got, err := s.Backlog(t.Context())
	if err != nil || got != want {
		t.Fatalf("Backlog = %d, %v; want %d", got, err, want)
	}
}
