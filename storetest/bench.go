package storetest

import (
	"sync/atomic"
	"testing"

	"github.com/genpipe/genpipe"
)

// Bench measures a store's hot paths, the same for every backend: the API's
// write (CreateRequest), the notifier's (ApplyStatus: applied, redelivered
// and interleaved) and GET's read (Request). newStore returns an empty store
// of its own; Bench closes it after each benchmark.
func Bench(b *testing.B, newStore func(b *testing.B) Store) {
	for _, bench := range benchmarks {
		b.Run(bench.name, func(b *testing.B) {
			s := newStore(b)
			defer s.Close()
			bench.fn(b, s)
		})
	}
}

// statusSteps are the changes a request goes through after received.
var statusSteps = []genpipe.Status{genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone}

var benchmarks = []struct {
	name string
	fn   func(*testing.B, Store)
}{
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
