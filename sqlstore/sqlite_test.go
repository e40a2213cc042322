package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/sqlstore"
)

func TestSQLitePragmas(t *testing.T) {
	s := open(t, sqliteFile.fresh(t))
	want := map[string]string{"journal_mode": "wal", "foreign_keys": "1", "synchronous": "1", "busy_timeout": "5000"}
	for name, db := range map[string]*sql.DB{"write": s.WriteDB(), "read": s.ReadDB()} {
		for pragma, value := range want {
			var got string
			if err := db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != value {
				t.Errorf("%s connection: PRAGMA %s = %q, %v; want %q", name, pragma, got, err, value)
			}
		}
	}
	var cache int
	if err := s.ReadDB().QueryRowContext(t.Context(), "PRAGMA cache_size").Scan(&cache); err != nil || cache != -512 {
		t.Errorf("read connection: PRAGMA cache_size = %d, %v; want -512 (KiB)", cache, err)
	}
	if _, err := s.ReadDB().ExecContext(t.Context(), `DELETE FROM requests`); err == nil {
		t.Error("the read pool accepts writes")
	}
	// The writer leaves checkpoints to a connection of their own, so that
	// no write waits for the sync a checkpoint makes.
	var every int
	if err := s.WriteDB().QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&every); err != nil || every != 0 {
		t.Errorf("write connection: PRAGMA wal_autocheckpoint = %d, %v; want 0", every, err)
	}
}

// TestSQLiteCheckpointsInTheBackground: what is written reaches the
// database file without the writer checkpointing (TestSQLitePragmas), once
// it is a WAL's worth of pages.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	path, s := fillerStore(t)
	before := fileSize(t, path)
	fill(t, s, 400) // 3 pages a row: over the 1000 pages that call a checkpoint
	// The pages are counted every second, and the first checkpoint comes
	// once 1000 are: at the end of the fill, or during a slow one (-race),
	// and then it copies most of the rows, the rest waiting for the next.
	// The bound is under checkpointMaxWait, so the pages, not the clock,
	// called it.
	testutil.Eventually(t, 30*time.Second, "the WAL copied into the database file", func() bool {
		return fileSize(t, path) >= before+200*8192
	})
}

// TestSQLiteCheckpointWaitsForPages: a few writes stay in the WAL for a
// while. Copying them at once would make the next write start the WAL over
// and sync its header, on the writer's path.
func TestSQLiteCheckpointWaitsForPages(t *testing.T) {
	path, s := fillerStore(t)
	before := fileSize(t, path)
	fill(t, s, 10)
	time.Sleep(2500 * time.Millisecond) // the pages are counted every second
	if after := fileSize(t, path); after != before {
		t.Errorf("the database file grew from %d to %d bytes after 30 pages: checkpointed before a WAL's worth", before, after)
	}
}

// fileSize returns the size of the file at path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// fillerStore opens a store on a file of its own with a table to fill,
// and returns the file's path.
func fillerStore(t *testing.T) (string, *sqlstore.Store) {
	t.Helper()
	path := tempPath(t)
	s := open(t, "sqlite:"+path)
	if _, err := s.WriteDB().ExecContext(t.Context(), `CREATE TABLE filler (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	return path, s
}

// fill writes n rows of 8 KiB to the filler table.
func fill(t *testing.T, s *sqlstore.Store, n int) {
	t.Helper()
	for range n {
		if _, err := s.WriteDB().ExecContext(t.Context(), `INSERT INTO filler VALUES (randomblob(8192))`); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSQLiteOpenInvalidPath(t *testing.T) {
	for _, url := range []string{"sqlite:", "sqlite:genpipe.db?mode=ro"} {
		if s, err := sqlstore.Open(t.Context(), url); genpipe.ErrorCode(err) != genpipe.EINVALID {
			t.Errorf("Open(%q) = %v; want an EINVALID error", url, err)
			if err == nil {
				s.Close()
			}
		}
	}
}

// TestSQLiteTwoStoresOneFile is two processes on one file: they open it
// together (one migrates, the other waits) and write concurrently, waiting
// for each other's write lock under busy_timeout.
func TestSQLiteTwoStoresOneFile(t *testing.T) {
	url := sqliteFile.fresh(t)
	stores := make([]*sqlstore.Store, 2)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := sqlstore.Open(t.Context(), url)
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
	if err := stores[0].ReadDB().QueryRowContext(t.Context(), `SELECT count(*) FROM request_history`).Scan(&n); err != nil || n != 400 {
		t.Errorf("%d history rows, %v; want 400: received and checking of each request", n, err)
	}
	if rows, files := migrationRows(t, stores[0]), migrationFiles(t, stores[0]); len(rows) != len(files) {
		t.Errorf("schema_migrations = %v; want one row for each of %v", rows, files)
	}
}

// TestSQLiteOpensEarlierSchema opens a file that an earlier genpipe
// migrated to version 3 and wrote to, as it did: Open adds the history
// triggers (0004), the publish claims (0006) and the requests' shares
// (0007) and changes nothing else, and the requests go on, as the default
// tenant's at normal priority.
func TestSQLiteOpensEarlierSchema(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, query, args...); err != nil {
			t.Fatalf("%.60s: %v", query, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
	for i, name := range []string{"0001_init.sql", "0002_request_owner.sql", "0003_stage_claims.sql"} {
		body, err := fs.ReadFile(sqlstore.SQLiteMigrations, name)
		if err != nil {
			t.Fatal(err)
		}
		exec(string(body))
		exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, i+1, name, "2025-01-02T03:04:05.123456Z")
	}
	r := newRequest()
	created := "2025-01-02T03:04:06.000001Z"
	exec(`INSERT INTO requests (id, object_id, style, status, status_rank, published, created_at, updated_at)
		VALUES ($1, $2, $3, 'received', 1, TRUE, $4, $4)`, r.ID, r.ObjectID, r.Style, created)
	exec(`INSERT INTO request_history (request_id, status, at) VALUES ($1, 'received', $2)`, r.ID, created)
	db.Close()

	s := open(t, "sqlite:"+path)
	rows := migrationRows(t, s)
	// Every migration after the three the file had is applied, in order.
	later := laterMigrations(t, 3)
	if len(rows) != 3+len(later) {
		t.Fatalf("schema_migrations = %v; want the three earlier and %v", rows, later)
	}
	for i, name := range later {
		if !strings.HasPrefix(rows[3+i], name+" ") {
			t.Fatalf("schema_migrations = %v; want the three earlier and %v", rows, later)
		}
	}
	want := []string{"1 0001_init.sql 2025-01-02T03:04:05.123456Z", "2 0002_request_owner.sql 2025-01-02T03:04:05.123456Z",
		"3 0003_stage_claims.sql 2025-01-02T03:04:05.123456Z"}
	if !slices.Equal(rows[:3], want) {
		t.Errorf("schema_migrations = %v; want %v kept", rows[:3], want)
	}
	at := time.Now()
	if applied, err := s.ApplyStatus(ctx, genpipe.StatusChange{RequestID: r.ID, Status: genpipe.StatusChecking, At: at}); err != nil || !applied {
		t.Fatalf("ApplyStatus = %v, %v; want applied", applied, err)
	}
	if got, err := s.Request(ctx, r.ID); err != nil ||
		got.Share != (genpipe.Share{Tenant: genpipe.DefaultTenant, Priority: genpipe.DefaultPriority, Weight: genpipe.DefaultWeight}) {
		t.Fatalf("Request of an earlier genpipe's request = %+v, %v; want the default share", got, err)
	}
	h, err := s.History(ctx, r.ID)
	if err != nil || len(h) != 2 || h[0].Status != genpipe.StatusReceived || h[1].Status != genpipe.StatusChecking {
		t.Fatalf("History = %+v, %v; want the stored received and the new checking", h, err)
	}
	if want, _ := time.Parse(time.RFC3339Nano, created); !h[0].At.Equal(want) || !h[1].At.Equal(at.UTC().Truncate(time.Microsecond)) {
		t.Errorf("History times %v, %v; want %v, %v", h[0].At, h[1].At, want, at)
	}
}

func tempPath(t testing.TB) string { return filepath.Join(t.TempDir(), "genpipe.db") }

// laterMigrations lists the SQLite migrations after version after, as
// schema_migrations names them: "4 0004_history_triggers.sql".
func laterMigrations(t *testing.T, after int) []string {
	t.Helper()
	entries, err := os.ReadDir("migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		if v > after {
			names = append(names, fmt.Sprintf("%d %s", v, e.Name()))
		}
	}
	return names
}

// Concurrent submissions on SQLite share a transaction (a group commit):
// while the one write connection is busy, the writes that arrive wait
// together and then commit in one transaction, each with its own outcome:
// a duplicate id is refused alone, a caller that went away is skipped,
// every other request is stored.
func TestSQLiteGroupCommit(t *testing.T) {
	s := open(t, sqliteFile.fresh(t))
	ctx := t.Context()
	dup := newRequest()
	if _, _, err := s.CreateClaimed(ctx, dup, time.Minute); err != nil { // also prepares its statements
		t.Fatal(err)
	}
	// Hold the write connection, as a long write of another part would.
	blocker, err := s.WriteDB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := s.GroupTransactions()

	const n = 20
	gone, leave := context.WithCancel(ctx)
	reqs := make([]*genpipe.Request, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		reqs[i] = newRequest()
		callCtx := ctx
		switch i {
		case 0:
			reqs[i] = dup // its id is stored already
		case 1:
			callCtx = gone
		}
		wg.Go(func() { _, _, errs[i] = s.CreateClaimed(callCtx, reqs[i], time.Minute) })
	}
	// The first group waits for the connection; the calls that came
	// later queue behind it.
	for s.WaitingWrites() < n {
		time.Sleep(time.Millisecond)
	}
	leave()
	if err := blocker.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	if got := s.GroupTransactions() - before; got > 2 {
		t.Errorf("%d concurrent creates took %d transactions; want them grouped in at most 2", n, got)
	}
	for i, r := range reqs {
		err := errs[i]
		switch {
		case i == 0:
			if genpipe.ErrorCode(err) != genpipe.ECONFLICT {
				t.Errorf("create of a stored id: %v; want %s", err, genpipe.ECONFLICT)
			}
		case i == 1:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("create by a caller that went away: %v; want context.Canceled", err)
			}
			if state, cerr := s.ClaimPublish(ctx, r.ID, "x", time.Minute); genpipe.ErrorCode(cerr) != genpipe.ENOTFOUND {
				t.Errorf("the skipped request: claim %q, %v; want it not stored", state, cerr)
			}
		case err != nil:
			t.Errorf("create %d: %v", i, err)
		default:
			if err := s.MarkPublished(ctx, r.ID); err != nil {
				t.Errorf("MarkPublished %d: %v", i, err)
			}
		}
	}
}

// TestSQLiteIdleTakeWritesNothing holds the file's write lock from another
// connection, as another process's transaction would: a take that has
// nothing to do (no task waits, no lease ran out) answers without waiting
// for it, and a take with a task waiting does wait.
func TestSQLiteIdleTakeWritesNothing(t *testing.T) {
	path := tempPath(t)
	s := open(t, "sqlite:"+path)
	take := genpipe.TakeRequest{Stage: genpipe.StageGenerate, Owner: "w1", Max: 1, Capacity: 4, Lease: time.Minute}
	task := genpipe.Task{Stage: genpipe.StageGenerate, RequestID: "00000000-0000-4000-8000-000000000001"}
	if err := s.EnqueueTasks(t.Context(), []genpipe.Task{task}); err != nil {
		t.Fatalf("EnqueueTasks: %v", err)
	}
	if got, err := s.TakeTasks(t.Context(), take); err != nil || len(got) != 1 {
		t.Fatalf("TakeTasks = %d, %v; want 1", len(got), err)
	}
	task.RequestID = "00000000-0000-4000-8000-000000000002"
	if err := s.EnqueueTasks(t.Context(), []genpipe.Task{task}); err != nil {
		t.Fatalf("EnqueueTasks: %v", err)
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")

	other := take
	other.Stage = genpipe.StageCheck // nothing was ever enqueued there
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if got, err := s.TakeTasks(ctx, other); err != nil || len(got) != 0 {
		t.Errorf("idle take under another's write lock = %d, %v; want 0, nil at once", len(got), err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if got, err := s.TakeTasks(ctx, take); err == nil {
		t.Errorf("take with a task waiting under another's write lock = %d, nil; want it to wait for the lock", len(got))
	}
}
