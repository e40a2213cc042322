package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/genpipe/genpipe/sqlite"
)

// Several processes (the API and the notifier) open a brand-new database
// file at once: all must open it, none may fail with SQLITE_BUSY.
func TestConcurrentOpenOfNewFile(t *testing.T) {
	for round := range 30 {
		path := filepath.Join(t.TempDir(), "new.db")
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				s, err := sqlite.Open(context.Background(), path)
				if err != nil {
					errs <- err
					return
				}
				s.Close()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
