package storetest

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
)

// Bench measures a store's hot paths, the same for every backend: the API's
// writes (CreateRequest; a submission's two, SubmitParallel), an AI
// stage's (its queue, TaskRound; its ledger, LedgerCall), the notifier's
// (ApplyStatus: applied, redelivered and interleaved) and GET's read
// (Request). newStore returns an empty store of its own; Bench closes
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
	// One task through a stage's queue as a dispatcher moves it at a low
	// load: one take enqueues it and takes it at once, the next finishes
	// it (and finds nothing more to take).
	{"TaskRound", func(b *testing.B, s Store) {
		take := genpipe.TakeRequest{Stage: genpipe.StageGenerate, Owner: "bench", Max: 64, Capacity: 64, Lease: time.Minute}
		for b.Loop() {
			in := take
			in.Enqueue = []genpipe.Task{{Stage: take.Stage, RequestID: uuid.NewString()}}
			got, err := s.TakeTasks(b.Context(), in)
			if err != nil || len(got) != 1 {
				b.Fatalf("take: %d tasks, %v; want the one enqueued", len(got), err)
			}
			out := take
			out.Finish = []int64{got[0].ID}
			if got, err := s.TakeTasks(b.Context(), out); err != nil || len(got) != 0 {
				b.Fatalf("finish: %d tasks, %v; want none", len(got), err)
			}
		}
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

// benchCall starts and finishes one call per iteration, each of its own
// request: a start with the same request, stage, replay, owner and
// attempt is the same call (StartCall is idempotent).
func benchCall(b *testing.B, s Store, budgets []genpipe.Budget) {
	for b.Loop() {
		start := callStart(uuid.NewString(), "bench", genpipe.StageGenerate, "w", budgets)
		c, err := s.StartCall(b.Context(), start)
		if err == nil {
			err = s.FinishCall(b.Context(), c.ID, genpipe.CallSucceeded, time.Second)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
