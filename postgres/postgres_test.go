package postgres_test

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/postgres"
	"github.com/genpipe/genpipe/storetest"
)

// The tests need a PostgreSQL server: GENPIPE_TEST_POSTGRES_URL names it
// (scripts/pgtest.sh starts a throwaway one and prints the variable).
// Each test works in a schema of its own, created for it and dropped after
// it, named in the store's URL as search_path: much faster than a database
// per test (CREATE DATABASE copies a template and syncs it to disk), and as
// isolated, since every statement of the store names its tables
// unqualified.
const (
	urlEnv     = "GENPIPE_TEST_POSTGRES_URL"
	requireEnv = "GENPIPE_REQUIRE_POSTGRES"
)

func TestStore(t *testing.T) {
	base := serverURL(t)
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, freshSchema(t, base)) })
}

// Several processes (API replicas, notifiers) start at once against a fresh
// database: all open it, and the schema is migrated once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	base := serverURL(t)
	files, err := fs.Glob(postgres.Migrations, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v, %v", files, err)
	}
	for round := range 5 {
		url := freshSchema(t, base)
		const n = 6
		stores := make(chan *postgres.Store, n)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				s, err := postgres.Open(t.Context(), url)
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
			t.Errorf("round %d: Open: %v", round, err)
		}
		var s *postgres.Store
		for other := range stores {
			if s == nil {
				s = other
				continue
			}
			other.Close()
		}
		if s == nil {
			t.FailNow()
		}
		if got := migrationRows(t, s); len(got) != len(files) {
			t.Errorf("round %d: schema_migrations = %v; want one row for each of %v", round, got, files)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("round %d: Ping: %v", round, err)
		}
		s.Close()
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	url := freshSchema(t, serverURL(t))
	s := open(t, url)
	r := newRequest()
	if _, _, err := s.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPublished(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	res := genpipe.ResultKeys(r.ID)
	if _, err := s.ApplyStatus(ctx, genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusDone, Result: &res}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueWebhook(ctx, genpipe.WebhookDelivery{RequestID: r.ID, Status: genpipe.StatusDone, URL: r.WebhookURL}); err != nil {
		t.Fatal(err)
	}
	before := migrationRows(t, s)
	s.Close()

	s = open(t, url)
	if after := migrationRows(t, s); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("schema_migrations after reopening = %v; want %v unchanged", after, before)
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
	if due, err := s.DueWebhooks(ctx, time.Now(), 10); err != nil || len(due) != 1 {
		t.Errorf("DueWebhooks after reopening = %v, %v; want the queued delivery", due, err)
	}
}

// IDs are uuid in PostgreSQL: one that is not a UUID is never found and
// never stored, rather than an error from the server's uuid parser.
func TestIDsNotUUID(t *testing.T) {
	s := open(t, freshSchema(t, serverURL(t)))
	ctx := t.Context()
	for _, id := range []string{"not-a-uuid", strings.ToUpper(uuid.NewString()), "'; DROP TABLE requests; --"} {
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
}

func TestDuplicateIDConflicts(t *testing.T) {
	s := open(t, freshSchema(t, serverURL(t)))
	r := newRequest()
	if _, _, err := s.CreateRequest(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.CreateRequest(t.Context(), r)
	checkCode(t, "CreateRequest of a stored id", err, genpipe.ECONFLICT)
}

// BenchmarkStore runs the shared store benchmarks, each in a fresh schema.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) storetest.Store { return open(b, freshSchema(b, serverURL(b))) })
}

// The next tests need no server.

func TestOpenBadURL(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://user:secret@host:notaport/db")
	checkCode(t, "Open with a bad URL", err, genpipe.EINVALID)
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestOpenServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, "postgres://postgres:secret@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	if err == nil {
		s.Close()
		t.Fatal("Open of a server that is down succeeded")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// serverURL returns GENPIPE_TEST_POSTGRES_URL, or skips the test loudly
// (fails it when GENPIPE_REQUIRE_POSTGRES is set). go test shows skips only
// with -v: scripts/pgtest.sh is what warns when it cannot start a server.
func serverURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(urlEnv)
	if url != "" {
		return url
	}
	msg := "!!! no PostgreSQL: " + urlEnv + " is not set, so the PostgreSQL status store is NOT TESTED." +
		" Run scripts/pgtest.sh start (or scripts/test.sh, which does) to start a local server."
	if os.Getenv(requireEnv) != "" {
		t.Fatal(msg + " (" + requireEnv + " is set)")
	}
	t.Skip(msg)
	return ""
}

// freshSchema creates an empty schema on the server at base for the test,
// drops it when the test ends, and returns a URL whose connections use it.
func freshSchema(t testing.TB, base string) string {
	t.Helper()
	schema := "genpipe_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	admin, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatalf("connect to %s: %v", urlEnv, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { // after the stores are closed: t.Cleanup runs last first
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, base, schema)
}

// withSearchPath adds search_path to a URL or a keyword/value connection
// string; pgx sends it to the server as a run-time parameter.
func withSearchPath(t testing.TB, base, schema string) string {
	t.Helper()
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema
	}
	u, err := neturl.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", urlEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // closing twice is harmless
	return s
}

// migrationRows returns schema_migrations as "version name" lines.
func migrationRows(t testing.TB, s *postgres.Store) []string {
	t.Helper()
	rows, _ := s.Pool().Query(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var version int
		var name string
		err := row.Scan(&version, &name)
		return fmt.Sprintf("%d %s", version, name), err
	})
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return lines
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
