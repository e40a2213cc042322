package sqlstore_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
)

// BenchmarkCanceledRequests is the cost of one poll of a worker process's
// cancel watcher: which of 64 running calls' requests (one canceled) are
// canceled, among 10,000 stored requests. Run:
//
//	go test -run XXX -bench CanceledRequests ./sqlstore/
func BenchmarkCanceledRequests(b *testing.B) {
	for _, db := range []database{sqliteFile, postgres} {
		b.Run(db.name, func(b *testing.B) {
			s := open(b, db.fresh(b))
			ids := make([]string, 0, 64)
			for i := range 10000 {
				r, _, err := s.CreateRequest(b.Context(), &genpipe.Request{ID: uuid.NewString(), Job: genpipe.Job{ObjectID: "o", Style: "forest"}})
				if err != nil {
					b.Fatal(err)
				}
				if i%157 == 0 && len(ids) < 64 {
					ids = append(ids, r.ID)
				}
			}
			for len(ids) < 64 {
				ids = append(ids, uuid.NewString())
			}
			if err := s.MarkPublished(b.Context(), ids[0]); err != nil {
				b.Fatal(err)
			}
			if _, _, err := s.CancelRequest(b.Context(), ids[0]); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				got, err := s.CanceledRequests(b.Context(), ids)
				if err != nil || len(got) != 1 {
					b.Fatalf("CanceledRequests = %v, %v; want the one", got, err)
				}
			}
		})
	}
}
