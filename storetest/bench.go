package storetest

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

// Bench measures a store's hot paths, the same for every backend: the API's
// writes (CreateRequest; a submission's two, SubmitParallel), the
// notifier's (ApplyStatus: applied, redelivered and interleaved) and GET's
// read (Request). newStore returns an empty store of its own; Bench closes
// it after each benchmark.
func Bench(b *testing.B, newStore func(b *testing.B) Store) {
	for _, bench := range benchmarks {
		b.Run(bench.name, func(b *testing.B) {
			s := newStore(b)
			defer s.Close()
			bench.fn(b, s)
		})
	}
}

// submitters is how many goroutines SubmitParallel runs: as many as
// genpipe bench intake's connections by default.
const submitters = 32

// statusSteps are the changes a request goes through after received.
var statusSteps = []genpipe.Status{genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone}

var benchmarks = []struct {
	name string
	fn   func(*testing.B, Store)
}{
	// The ledger's writes around one AI call: the row before it is sent,
	// its outcome after; and with a budget to check in the same
	// transaction.
	{"LedgerCall", func(b *testing.B, s Store) { benchCall(b, s, nil) }},
	{"LedgerCallWithBudget", func(b *testing.B, s Store) {
		benchCall(b, s, []genpipe.Budget{{Stage: genpipe.StageGenerate, Calls: 1 << 40}})
	}},
	{"CreateRequest", func(b *testing.B, s Store) {
		for b.Loop() {
			if _, _, err := s.CreateRequest(b.Context(), newRequest("")); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"CreateRequestParallel", func(b *testing.B, s Store) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.CreateRequest(b.Context(), newRequest("")); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}},
	// What a submission writes (its claimed request, then its mark once
	// published) from as many goroutines at once as the intake benchmark
	// has connections: the store's share of POST /v1/requests.
	{"SubmitParallel", func(b *testing.B, s Store) {
		b.SetParallelism(max(1, submitters/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, _, err := s.CreateClaimed(b.Context(), newRequest(""), time.Minute)
				if err == nil {
					err = s.MarkPublished(b.Context(), r.ID)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}},
	// Applied changes: checking, generating and done in turn on fresh requests.
	{"ApplyStatus", func(b *testing.B, s Store) {
		ids := published(b, s, b.N/3+1)
		b.ResetTimer()
		for i := range b.N {
			c := genpipe.StatusChange{RequestID: ids[i/3], Status: statusSteps[i%3]}
			if applied, err := s.ApplyStatus(b.Context(), c); err != nil || !applied {
				b.Fatal(applied, err)
			}
		}
	}},
	// Ignored changes: the cost of a redelivered event.
	{"ApplyStatusRedelivered", func(b *testing.B, s Store) {
		c := genpipe.StatusChange{RequestID: published(b, s, 1)[0], Status: genpipe.StatusReceived}
		for b.Loop() {
			if applied, err := s.ApplyStatus(b.Context(), c); err != nil || applied {
				b.Fatal(applied, err)
			}
		}
	}},
	// Interleaved goroutines may apply a request's statuses out of order;
	// ignored changes are part of the real workload too.
	{"ApplyStatusParallel", func(b *testing.B, s Store) {
		ids := published(b, s, b.N/3+1)
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1) - 1
				c := genpipe.StatusChange{RequestID: ids[i/3], Status: statusSteps[i%3]}
				if _, err := s.ApplyStatus(b.Context(), c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}},
	{"RequestParallel", func(b *testing.B, s Store) {
		ids := published(b, s, 1000)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := s.Request(b.Context(), ids[i%len(ids)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}},
}

// published stores n published requests and returns their ids.
func published(b *testing.B, s Store, n int) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		r := newRequest("")
		if _, _, err := s.CreateRequest(b.Context(), r); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkPublished(b.Context(), r.ID); err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	return ids
}

// benchCall starts and finishes one call per iteration.
func benchCall(b *testing.B, s Store, budgets []genpipe.Budget) {
	start := callStart("00000000-0000-4000-8000-000000000000", "bench", genpipe.StageGenerate, "w", budgets)
	for b.Loop() {
		c, err := s.StartCall(b.Context(), start)
		if err == nil {
			err = s.FinishCall(b.Context(), c.ID, genpipe.CallSucceeded, time.Second)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
