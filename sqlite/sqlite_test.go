package sqlite_test

import (
	"database/sql"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlite"
	"github.com/genpipe/genpipe/storetest"
	"github.com/google/uuid"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, tempPath(t)) })
}

// TestStoreMemory runs the suite on ":memory:", where reads and writes
// share the one connection.
func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, ":memory:") })
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s := open(t, path)
	r := newRequest()
	if _, _, err := s.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPublished(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	res := genpipe.ResultKeys(r.ID)
	if _, err := s.ApplyStatus(ctx, genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusDone, Result: &res, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueWebhook(ctx, genpipe.WebhookDelivery{RequestID: r.ID, Status: genpipe.StatusDone, URL: r.WebhookURL}); err != nil {
		t.Fatal(err)
	}
	before := migrationRows(t, s)
	if len(before) == 0 {
		t.Fatal("schema_migrations is empty after Open")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	if after := migrationRows(t, s); !slices.Equal(after, before) {
		t.Errorf("schema_migrations after reopening = %v; want %v unchanged", after, before)
	}
	if applied, err := sqlite.Migrate(ctx, s.WriteDB(), sqlite.Migrations); err != nil || len(applied) != 0 {
		t.Errorf("Migrate after reopening applied %v, %v; want nothing", applied, err)
	}
	got, err := s.Request(ctx, r.ID)
	if err != nil {
		t.Fatalf("Request after reopening: %v", err)
	}
	if got.Status != genpipe.StatusDone || got.Result == nil || *got.Result != res || got.Job != r.Job {
		t.Errorf("Request after reopening = %+v", got)
	}
	if h, err := s.History(ctx, r.ID); err != nil || len(h) != 2 {
		t.Errorf("History after reopening = %v, %v; want received, done", h, err)
	}
	if due, err := s.DueWebhooks(ctx, time.Now(), 10); err != nil || len(due) != 1 {
		t.Errorf("DueWebhooks after reopening = %v, %v; want the queued delivery", due, err)
	}
}

// migrationRows returns schema_migrations as "version name applied_at" lines.
func migrationRows(t *testing.T, s *sqlite.Store) []string {
	t.Helper()
	rows, err := s.ReadDB().QueryContext(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var name, at string
		if err := rows.Scan(&v, &name, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(v, " ", name, " ", at))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withMigrations returns the embedded migrations plus extra files.
func withMigrations(t *testing.T, extra map[string]string) fs.FS {
	t.Helper()
	fsys := fstest.MapFS{}
	files, err := fs.Glob(sqlite.Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(sqlite.Migrations, f)
		if err != nil {
			t.Fatal(err)
		}
		fsys[f] = &fstest.MapFile{Data: b}
	}
	for name, body := range extra {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

func TestMigrateLaterVersion(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s := open(t, path)
	defer s.Close()
	fsys := withMigrations(t, map[string]string{
		"9999_extra.sql": `CREATE TABLE extra (x TEXT); INSERT INTO extra (x) VALUES ('one');`,
	})
	applied, err := sqlite.Migrate(ctx, s.WriteDB(), fsys)
	if err != nil || !slices.Equal(applied, []int{9999}) {
		t.Fatalf("Migrate with a new file = %v, %v; want [9999]", applied, err)
	}
	if applied, err := sqlite.Migrate(ctx, s.WriteDB(), fsys); err != nil || len(applied) != 0 {
		t.Fatalf("Migrate again = %v, %v; want nothing", applied, err)
	}
	var n int
	if err := s.ReadDB().QueryRowContext(ctx, `SELECT count(*) FROM extra`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("extra has %d rows, %v; want the one migration 0002 inserted once", n, err)
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	ctx := t.Context()
	s := open(t, tempPath(t))
	defer s.Close()
	before := migrationRows(t, s)
	fsys := withMigrations(t, map[string]string{
		"0002_good.sql":   `CREATE TABLE good (x TEXT);`,
		"0003_broken.sql": `CREATE TABLE broken (x TEXT;`,
	})
	if _, err := sqlite.Migrate(ctx, s.WriteDB(), fsys); err == nil {
		t.Fatal("Migrate with a broken file succeeded")
	}
	if after := migrationRows(t, s); !slices.Equal(after, before) {
		t.Errorf("schema_migrations after a failed migration = %v; want %v", after, before)
	}
	if _, err := s.ReadDB().ExecContext(ctx, `SELECT * FROM good`); err == nil {
		t.Error("table good exists: the migration before the broken one was not rolled back")
	}
}

func TestMigrateBadNames(t *testing.T) {
	for _, files := range []map[string]string{
		{"init.sql": ``},
		{"0000_zero.sql": ``},
		{"0001_again.sql": ``}, // same version as 0001_init.sql
	} {
		s := open(t, tempPath(t))
		if _, err := sqlite.Migrate(t.Context(), s.WriteDB(), withMigrations(t, files)); err == nil {
			t.Errorf("Migrate with %v succeeded", slices.Collect(maps.Keys(files)))
		}
		s.Close()
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, tempPath(t))
	defer s.Close()
	want := map[string]string{"journal_mode": "wal", "foreign_keys": "1", "synchronous": "1", "busy_timeout": "5000"}
	for name, db := range map[string]*sql.DB{"write": s.WriteDB(), "read": s.ReadDB()} {
		for pragma, value := range want {
			var got string
			if err := db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != value {
				t.Errorf("%s connection: PRAGMA %s = %q, %v; want %q", name, pragma, got, err, value)
			}
		}
	}
	if _, err := s.ReadDB().ExecContext(t.Context(), `DELETE FROM requests`); err == nil {
		t.Error("the read pool accepts writes")
	}
}

func TestOpenInvalidPath(t *testing.T) {
	for _, path := range []string{"", "genpipe.db?mode=ro"} {
		if s, err := sqlite.Open(t.Context(), path); genpipe.ErrorCode(err) != genpipe.EINVALID {
			t.Errorf("Open(%q) = %v; want an EINVALID error", path, err)
			if err == nil {
				s.Close()
			}
		}
	}
}

// TestTwoStoresOneFile is two processes on one file: they open it together
// (one migrates, the other waits) and write concurrently, waiting for each
// other's write lock under busy_timeout.
func TestTwoStoresOneFile(t *testing.T) {
	path := tempPath(t)
	stores := make([]*sqlite.Store, 2)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, s := range stores {
		defer s.Close()
	}
	for _, s := range stores {
		for range 4 {
			wg.Go(func() {
				for range 25 {
					r := newRequest()
					if _, _, err := s.CreateRequest(t.Context(), r); err != nil {
						t.Errorf("CreateRequest: %v", err)
						return
					}
					if _, err := s.ApplyStatus(t.Context(), genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusChecking}); err != nil {
						t.Errorf("ApplyStatus: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	var n int
	if err := stores[0].ReadDB().QueryRowContext(t.Context(), `SELECT count(*) FROM requests WHERE status = 'checking'`).Scan(&n); err != nil || n != 200 {
		t.Errorf("%d requests in checking, %v; want 200", n, err)
	}
	files, err := fs.Glob(sqlite.Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if rows := migrationRows(t, stores[0]); len(rows) != len(files) {
		t.Errorf("schema_migrations = %v; want one row for each of %v", rows, files)
	}
}

// BenchmarkStore runs the shared store benchmarks on a SQLite file.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) storetest.Store { return open(b, tempPath(b)) })
}

func newRequest() *genpipe.Request {
	return &genpipe.Request{
		ID:         uuid.NewString(),
		Job:        genpipe.Job{ObjectID: uuid.NewString(), Style: "corporate", Title: "Q3", Description: "our best quarter"},
		WebhookURL: "https://hooks.example/genpipe",
	}
}

func tempPath(t testing.TB) string { return filepath.Join(t.TempDir(), "genpipe.db") }

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}
