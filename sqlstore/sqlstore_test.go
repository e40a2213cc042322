package sqlstore_test

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlstore"
	"github.com/genpipe/genpipe/storetest"
)

// database is a kind of database the tests run on.
type database struct {
	name string
	// fresh returns the URL of a new, empty database, which lives until
	// the test ends. It skips the test when the database is unavailable.
	fresh func(t testing.TB) string
}

var (
	sqliteFile = database{"sqlite", func(t testing.TB) string { return "sqlite:" + tempPath(t) }}
	// ":memory:" shares one connection between reads and writes.
	sqliteMemory = database{"sqlite-memory", func(testing.TB) string { return "sqlite::memory:" }}
	postgres     = database{"postgres", func(t testing.TB) string { return freshSchema(t, serverURL(t)) }}
)

// onEach runs test on a SQLite file and on PostgreSQL, as subtests.
func onEach(t *testing.T, test func(t *testing.T, db database)) {
	for _, db := range []database{sqliteFile, postgres} {
		t.Run(db.name, func(t *testing.T) { test(t, db) })
	}
}

// TestStore runs the conformance suite on every kind of database.
func TestStore(t *testing.T) {
	for _, db := range []database{sqliteFile, sqliteMemory, postgres} {
		t.Run(db.name, func(t *testing.T) {
			if db.name == postgres.name {
				serverURL(t) // skip once, not in every subtest
			}
			storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, db.fresh(t)) })
		})
	}
}

// TestQueue runs the task queue's conformance suite on a SQLite file and
// on PostgreSQL, each test with two stores on one database, as two worker
// processes have.
func TestQueue(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		if db.name == postgres.name {
			serverURL(t) // skip once, not in every subtest
		}
		storetest.RunQueue(t, func(t *testing.T) (genpipe.TaskQueue, genpipe.TaskQueue) {
			url := db.fresh(t)
			return open(t, url), open(t, url)
		})
	})
}

// TestEstimate runs the predicted waits' conformance suite on a SQLite
// file and on PostgreSQL.
func TestEstimate(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		if db.name == postgres.name {
			serverURL(t) // skip once, not in every subtest
		}
		storetest.RunEstimate(t, func(t *testing.T) storetest.EstimateStore { return open(t, db.fresh(t)) })
	})
}

// BenchmarkStore runs the shared store benchmarks on each database, each
// benchmark on a fresh one: BenchmarkStore/sqlite/CreateRequest, ...
func BenchmarkStore(b *testing.B) {
	for _, db := range []database{sqliteFile, postgres} {
		b.Run(db.name, func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) storetest.Store { return open(b, db.fresh(b)) })
		})
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	for _, url := range []string{"mysql://user:secret@host/db", "genpipe.db", ""} {
		s, err := sqlstore.Open(t.Context(), url)
		checkCode(t, fmt.Sprintf("Open(%q)", url), err, genpipe.EINVALID)
		if err == nil {
			s.Close()
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		ctx := t.Context()
		url := db.fresh(t)
		s := open(t, url)
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

		s = open(t, url)
		if after := migrationRows(t, s); !slices.Equal(after, before) {
			t.Errorf("schema_migrations after reopening = %v; want %v unchanged", after, before)
		}
		if applied, err := s.Migrate(ctx, s.Migrations()); err != nil || len(applied) != 0 {
			t.Errorf("Migrate after reopening applied %v, %v; want nothing", applied, err)
		}
		got, err := s.Request(ctx, r.ID)
		if err != nil {
			t.Fatalf("Request after reopening: %v", err)
		}
		if got.Status != genpipe.StatusDone || got.Result == nil || *got.Result != res || got.Job != r.Job {
			t.Errorf("Request after reopening = %+v", got)
		}
		// Whatever the process's time zone: pgx's default would be time.Local.
		if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
			t.Errorf("times in %v and %v; want UTC", got.CreatedAt.Location(), got.UpdatedAt.Location())
		}
		if h, err := s.History(ctx, r.ID); err != nil || len(h) != 2 {
			t.Errorf("History after reopening = %v, %v; want received, done", h, err)
		}
		if due, err := s.ClaimDueWebhooks(ctx, time.Now(), time.Minute, 10); err != nil || len(due) != 1 {
			t.Errorf("ClaimDueWebhooks after reopening = %v, %v; want the queued delivery", due, err)
		}
	})
}

// Several processes (API replicas, notifiers) open a fresh database at
// once: all open it, none fails (SQLite must not answer SQLITE_BUSY), and
// the schema is migrated once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		rounds, n := 30, 4
		if db.name == postgres.name {
			rounds, n = 5, 6
		}
		for round := range rounds {
			url := db.fresh(t)
			stores := make(chan *sqlstore.Store, n)
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					s, err := sqlstore.Open(t.Context(), url)
					if err != nil {
						errs <- err
						return
					}
					stores <- s
				})
			}
			wg.Wait()
			close(stores)
			close(errs)
			for err := range errs {
				t.Fatalf("round %d: Open: %v", round, err)
			}
			s := <-stores
			for other := range stores {
				other.Close()
			}
			if got, files := migrationRows(t, s), migrationFiles(t, s); len(got) != len(files) {
				t.Errorf("round %d: schema_migrations = %v; want one row for each of %v", round, got, files)
			}
			if err := s.Ping(t.Context()); err != nil {
				t.Errorf("round %d: Ping: %v", round, err)
			}
			s.Close()
		}
	})
}

// IDs are UUIDs (uuid in PostgreSQL): one that is not a UUID in canonical
// form is never found and never stored, rather than an error from the
// server's uuid parser, and alike on every database.
func TestIDsNotUUID(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		s := open(t, db.fresh(t))
		ctx := t.Context()
		for _, id := range []string{"not-a-uuid", strings.ToUpper(uuid.NewString()), "{" + uuid.NewString() + "}",
			strings.ReplaceAll(uuid.NewString(), "-", ""), "'; DROP TABLE requests; --"} {
			r := newRequest()
			r.ID = id
			_, _, err := s.CreateRequest(ctx, r)
			checkCode(t, "CreateRequest "+id, err, genpipe.EINVALID)
			_, err = s.Request(ctx, id)
			checkCode(t, "Request "+id, err, genpipe.ENOTFOUND)
			_, err = s.History(ctx, id)
			checkCode(t, "History "+id, err, genpipe.ENOTFOUND)
			checkCode(t, "MarkPublished "+id, s.MarkPublished(ctx, id), genpipe.ENOTFOUND)
			_, err = s.ApplyStatus(ctx, genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking})
			checkCode(t, "ApplyStatus "+id, err, genpipe.ENOTFOUND)
			err = s.EnqueueWebhook(ctx, genpipe.WebhookDelivery{RequestID: id, Status: genpipe.StatusDone, URL: "https://hooks.example/"})
			checkCode(t, "EnqueueWebhook "+id, err, genpipe.ENOTFOUND)
		}
	})
}

func TestDuplicateIDConflicts(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		s := open(t, db.fresh(t))
		r := newRequest()
		if _, _, err := s.CreateRequest(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.CreateRequest(t.Context(), r)
		checkCode(t, "CreateRequest of a stored id", err, genpipe.ECONFLICT)
	})
}

func TestMigrateLaterVersion(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		ctx := t.Context()
		s := open(t, db.fresh(t))
		fsys := withMigrations(t, s, map[string]string{
			"9999_extra.sql": `CREATE TABLE extra (x TEXT); INSERT INTO extra (x) VALUES ('one');`,
		})
		applied, err := s.Migrate(ctx, fsys)
		if err != nil || !slices.Equal(applied, []int{9999}) {
			t.Fatalf("Migrate with a new file = %v, %v; want [9999]", applied, err)
		}
		if applied, err := s.Migrate(ctx, fsys); err != nil || len(applied) != 0 {
			t.Fatalf("Migrate again = %v, %v; want nothing", applied, err)
		}
		var n int
		if err := s.ReadDB().QueryRowContext(ctx, `SELECT count(*) FROM extra`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("extra has %d rows, %v; want the one migration 9999 inserted once", n, err)
		}
	})
}

func TestMigrateFailureRollsBack(t *testing.T) {
	onEach(t, func(t *testing.T, db database) {
		ctx := t.Context()
		s := open(t, db.fresh(t))
		before := migrationRows(t, s)
		fsys := withMigrations(t, s, map[string]string{
			"9998_good.sql":   `CREATE TABLE good (x TEXT);`,
			"9999_broken.sql": `CREATE TABLE broken (x TEXT;`,
		})
		if _, err := s.Migrate(ctx, fsys); err == nil {
			t.Fatal("Migrate with a broken file succeeded")
		}
		if after := migrationRows(t, s); !slices.Equal(after, before) {
			t.Errorf("schema_migrations after a failed migration = %v; want %v", after, before)
		}
		if _, err := s.ReadDB().ExecContext(ctx, `SELECT * FROM good`); err == nil {
			t.Error("table good exists: the migration before the broken one was not rolled back")
		}
	})
}

func TestMigrateBadNames(t *testing.T) {
	s := open(t, sqliteFile.fresh(t))
	for _, files := range []map[string]string{
		{"init.sql": ``},
		{"0000_zero.sql": ``},
		{"0001_again.sql": ``}, // same version as 0001_init.sql
	} {
		if _, err := s.Migrate(t.Context(), withMigrations(t, s, files)); err == nil {
			t.Errorf("Migrate with %v succeeded", slices.Collect(maps.Keys(files)))
		}
	}
}

// migrationRows returns schema_migrations as "version name applied_at" lines.
func migrationRows(t testing.TB, s *sqlstore.Store) []string {
	t.Helper()
	rows, err := s.ReadDB().QueryContext(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var name string
		var at any // text on SQLite, a time on PostgreSQL
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

// migrationFiles returns the names of the store's embedded migrations.
func migrationFiles(t testing.TB, s *sqlstore.Store) []string {
	t.Helper()
	files, err := fs.Glob(s.Migrations(), "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v, %v", files, err)
	}
	return files
}

// withMigrations returns the store's embedded migrations plus extra files.
func withMigrations(t testing.TB, s *sqlstore.Store, extra map[string]string) fs.FS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range migrationFiles(t, s) {
		b, err := fs.ReadFile(s.Migrations(), f)
		if err != nil {
			t.Fatal(err)
		}
		fsys[f] = &fstest.MapFile{Data: b}
	}
	for name, body := range extra {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

// open opens the store at url, closed when the test ends (closing twice is
// harmless).
func open(t testing.TB, url string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newRequest() *genpipe.Request {
	return &genpipe.Request{
		ID:         uuid.NewString(),
		Job:        genpipe.Job{ObjectID: uuid.NewString(), Style: "corporate", Title: "Q3", Description: "our best quarter"},
		WebhookURL: "https://hooks.example/genpipe",
	}
}

func checkCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := genpipe.ErrorCode(err); got != want {
		t.Errorf("%s: error %v (code %q); want code %q", what, err, got, want)
	}
}
