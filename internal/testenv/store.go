package testenv

import (
	"path/filepath"
	"testing"

	"github.com/genpipe/genpipe/sqlstore"
)

// The status store is named only in this file: the tests get it as a
// StatusStore, so changing the store's package changes this file alone.

// StatusStore is the status store the tests run against: SQLite, in a file.
type StatusStore = sqlstore.Store

// OpenStatusStore opens the status store in the file at path, creating it if
// needed, and closes it when the test ends. Several may open one file, as
// several processes would.
func OpenStatusStore(t testing.TB, path string) *StatusStore {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// NewStatusStore opens a status store of the test's own, in t.TempDir().
func NewStatusStore(t testing.TB) *StatusStore {
	t.Helper()
	return OpenStatusStore(t, filepath.Join(t.TempDir(), "genpipe.db"))
}
