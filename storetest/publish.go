package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
)

// publishClaimTests pin down ClaimPublish and ReleasePublish, on which
// genpipe.Submitter builds "one Idempotency-Key, one event": one holder at
// a time, whatever the concurrency; published is final; a lease that ends
// or a release lets the next caller publish.
var publishClaimTests = []test{
	{"FirstClaimsOthersWaitUntilPublished", func(t *testing.T, s Store) {
		r := create(t, s, newRequest("key-1"))
		checkPublishClaim(t, s, r.ID, "a", time.Minute, genpipe.PublishClaimed)
		checkPublishClaim(t, s, r.ID, "b", time.Minute, genpipe.PublishHeld)
		checkPublishClaim(t, s, r.ID, "a", time.Minute, genpipe.PublishHeld) // a claim is taken once, even by its holder
		// Claimed is not published: the client has no answer yet.
		_, err := s.Request(t.Context(), r.ID)
		checkCode(t, "Request of a claimed request", err, genpipe.ENOTFOUND)

		publish(t, s, r.ID)
		checkPublishClaim(t, s, r.ID, "b", time.Minute, genpipe.Published)
		checkPublishClaim(t, s, r.ID, "c", time.Minute, genpipe.Published)
		if err := s.ReleasePublish(t.Context(), r.ID, "a"); err != nil { // a release after publishing changes nothing
			t.Fatalf("ReleasePublish after publishing: %v", err)
		}
		checkPublishClaim(t, s, r.ID, "c", time.Minute, genpipe.Published)
		read(t, s, r.ID)
	}},
	{"PublishedWithoutClaim", func(t *testing.T, s Store) {
		r := createPublished(t, s)
		checkPublishClaim(t, s, r.ID, "a", time.Minute, genpipe.Published)
	}},
	{"ExpiredLeaseIsTakenOver", func(t *testing.T, s Store) {
		r := create(t, s, newRequest("key-1"))
		checkPublishClaim(t, s, r.ID, "died", 50*time.Millisecond, genpipe.PublishClaimed)
		time.Sleep(100 * time.Millisecond)
		checkPublishClaim(t, s, r.ID, "next", time.Minute, genpipe.PublishClaimed)
		checkPublishClaim(t, s, r.ID, "later", time.Minute, genpipe.PublishHeld)
	}},
	{"ReleaseLetsTheNextClaimAtOnce", func(t *testing.T, s Store) {
		r := create(t, s, newRequest("key-1"))
		checkPublishClaim(t, s, r.ID, "a", time.Hour, genpipe.PublishClaimed)
		if err := s.ReleasePublish(t.Context(), r.ID, "b"); err != nil { // not the holder: no-op
			t.Fatalf("ReleasePublish by another owner: %v", err)
		}
		checkPublishClaim(t, s, r.ID, "b", time.Minute, genpipe.PublishHeld)
		if err := s.ReleasePublish(t.Context(), r.ID, "a"); err != nil {
			t.Fatalf("ReleasePublish: %v", err)
		}
		checkPublishClaim(t, s, r.ID, "b", time.Minute, genpipe.PublishClaimed)
		if err := s.ReleasePublish(t.Context(), r.ID, "a"); err != nil { // the old holder again: no-op
			t.Fatalf("ReleasePublish by the old holder: %v", err)
		}
		checkPublishClaim(t, s, r.ID, "c", time.Minute, genpipe.PublishHeld)
	}},
	{"ConcurrentSubmissionsOneWins", func(t *testing.T, s Store) {
		// As the Submitter does: each submission stores its request, finds
		// the one stored with the key, and claims it.
		const n = 32
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			states = map[genpipe.PublishState]int{}
			ids    = map[string]bool{}
		)
		for range n {
			wg.Go(func() {
				r := newRequest("key-concurrent")
				stored, _, err := s.CreateRequest(t.Context(), r)
				if err != nil {
					t.Errorf("CreateRequest: %v", err)
					return
				}
				state, err := s.ClaimPublish(t.Context(), stored.ID, r.ID, time.Minute)
				if err != nil {
					t.Errorf("ClaimPublish: %v", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				states[state]++
				ids[stored.ID] = true
			})
		}
		wg.Wait()
		if states[genpipe.PublishClaimed] != 1 || states[genpipe.PublishHeld] != n-1 || len(ids) != 1 {
			t.Fatalf("%d concurrent submissions with one key: claims %v on requests %v; want one claimed, the rest held, one request",
				n, states, ids)
		}
	}},
	{"InvalidInput", func(t *testing.T, s Store) {
		_, err := s.ClaimPublish(t.Context(), uuid.NewString(), "a", time.Minute)
		checkCode(t, "ClaimPublish of an unknown request", err, genpipe.ENOTFOUND)
		_, err = s.ClaimPublish(t.Context(), "not-a-uuid", "a", time.Minute)
		checkCode(t, "ClaimPublish of a malformed id", err, genpipe.ENOTFOUND)
		r := create(t, s, newRequest(""))
		_, err = s.ClaimPublish(t.Context(), r.ID, "", time.Minute)
		checkCode(t, "ClaimPublish without an owner", err, genpipe.EINVALID)
		_, err = s.ClaimPublish(t.Context(), r.ID, "a", 0)
		checkCode(t, "ClaimPublish without a lease", err, genpipe.EINVALID)
		if err := s.ReleasePublish(t.Context(), uuid.NewString(), "a"); err != nil {
			t.Fatalf("ReleasePublish of an unknown request: %v", err)
		}
	}},
}

func checkPublishClaim(t *testing.T, s Store, id, owner string, lease time.Duration, want genpipe.PublishState) {
	t.Helper()
	got, err := s.ClaimPublish(t.Context(), id, owner, lease)
	if err != nil || got != want {
		t.Fatalf("ClaimPublish(%s, %s) = %q, %v; want %q", id, owner, got, err, want)
	}
}
