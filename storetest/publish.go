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
	{"CreateClaimedHoldsTheClaim", func(t *testing.T, s Store) {
		// A request created with its claim is held by its own id: another
		// submission waits, the holder publishes, and it is not visible
		// before.
		r := newRequest("key-1")
		stored, created, err := s.CreateClaimed(t.Context(), r, time.Minute)
		if err != nil || !created || stored.ID != r.ID {
			t.Fatalf("CreateClaimed = %v, created %v, %v; want request %s, created", stored, created, err, r.ID)
		}
		checkPublishClaim(t, s, r.ID, "other", time.Minute, genpipe.PublishHeld)
		checkPublishClaim(t, s, r.ID, r.ID, time.Minute, genpipe.PublishHeld) // taken once, even by its holder
		_, err = s.Request(t.Context(), r.ID)
		checkCode(t, "Request of a request created claimed", err, genpipe.ENOTFOUND)
		if err := s.ReleasePublish(t.Context(), r.ID, "other"); err != nil { // not the holder: no-op
			t.Fatalf("ReleasePublish by another owner: %v", err)
		}
		checkPublishClaim(t, s, r.ID, "other", time.Minute, genpipe.PublishHeld)
		publish(t, s, r.ID)
		checkPublishClaim(t, s, r.ID, "other", time.Minute, genpipe.Published)
		read(t, s, r.ID)
	}},
	{"CreateClaimedReleaseAndLease", func(t *testing.T, s Store) {
		// Given back, the claim goes to the next caller at once; not given
		// back (its holder died), when its lease ends.
		r := newRequest("")
		create := func(lease time.Duration) {
			t.Helper()
			if _, created, err := s.CreateClaimed(t.Context(), r, lease); err != nil || !created {
				t.Fatalf("CreateClaimed: created %v, %v", created, err)
			}
		}
		create(time.Hour)
		if err := s.ReleasePublish(t.Context(), r.ID, r.ID); err != nil {
			t.Fatalf("ReleasePublish: %v", err)
		}
		checkPublishClaim(t, s, r.ID, "next", time.Minute, genpipe.PublishClaimed)

		r = newRequest("")
		create(50 * time.Millisecond)
		time.Sleep(100 * time.Millisecond)
		checkPublishClaim(t, s, r.ID, "next", time.Minute, genpipe.PublishClaimed)
	}},
	{"CreateClaimedTwinTakesNothing", func(t *testing.T, s Store) {
		// A retry with a used key gets the first request and no claim: it
		// claims as any retry does, after the first's holder.
		first := newRequest("key-1")
		if _, created, err := s.CreateClaimed(t.Context(), first, time.Minute); err != nil || !created {
			t.Fatalf("CreateClaimed: created %v, %v", created, err)
		}
		retry := newRequest("key-1")
		got, created, err := s.CreateClaimed(t.Context(), retry, time.Minute)
		if err != nil || created || got.ID != first.ID {
			t.Fatalf("CreateClaimed with a used key = %v, created %v, %v; want request %s, not created", got, created, err, first.ID)
		}
		checkPublishClaim(t, s, first.ID, retry.ID, time.Minute, genpipe.PublishHeld)
		keyless := newRequest("")
		if _, _, err := s.CreateClaimed(t.Context(), keyless, time.Minute); err != nil {
			t.Fatalf("CreateClaimed: %v", err)
		}
		_, _, err = s.CreateClaimed(t.Context(), keyless, time.Minute)
		checkCode(t, "CreateClaimed of a stored id", err, genpipe.ECONFLICT)
		_, _, err = s.CreateClaimed(t.Context(), newRequest(""), 0)
		checkCode(t, "CreateClaimed without a lease", err, genpipe.EINVALID)
	}},
	{"ConcurrentCreateClaimedOneWins", func(t *testing.T, s Store) {
		// As the Submitter does: of concurrent submissions with one key,
		// one creates (and holds the claim), every other finds it held.
		const n = 32
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
			states  = map[genpipe.PublishState]int{}
			ids     = map[string]bool{}
		)
		for range n {
			wg.Go(func() {
				r := newRequest("key-concurrent")
				stored, made, err := s.CreateClaimed(t.Context(), r, time.Minute)
				if err != nil {
					t.Errorf("CreateClaimed: %v", err)
					return
				}
				var state genpipe.PublishState
				if !made {
					if state, err = s.ClaimPublish(t.Context(), stored.ID, r.ID, time.Minute); err != nil {
						t.Errorf("ClaimPublish: %v", err)
						return
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if made {
					created++
				} else {
					states[state]++
				}
				ids[stored.ID] = true
			})
		}
		wg.Wait()
		if created != 1 || states[genpipe.PublishHeld] != n-1 || len(ids) != 1 {
			t.Fatalf("%d concurrent submissions with one key: %d created, claims %v on requests %v; want one created, the rest held, one request",
				n, created, states, ids)
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
