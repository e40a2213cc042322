// Package sqlite is genpipe's embedded status store: a genpipe.RequestStore
// on one SQLite file (modernc.org/sqlite, pure Go, driver name "sqlite").
//
// SQLite allows one writer at a time. Rather than let concurrent writers
// collide and sleep in SQLite's busy handler, a Store keeps two pools: one
// connection that does every write, in BEGIN IMMEDIATE transactions, so
// writers queue in Go; and a few read-only connections that, in WAL mode,
// read while the writer writes. busy_timeout still covers another process
// using the same file.
//
// The schema is in migrations/*.sql, embedded, and applied at Open in one
// transaction; schema_migrations records which ran. A later version adds a
// file with the next number, never edits an applied one.
//
// The statements are written to run on PostgreSQL too ($n placeholders,
// ON CONFLICT, boolean literals, NULLIF, EXISTS), so that a PostgreSQL store
// can share them; only the schema and the timestamp encoding (fixed-width
// UTC text, see formatTime) are SQLite's own.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/internal/migrations"
	sqlitedriver "modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

var _ genpipe.RequestStore = (*Store)(nil)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a genpipe.RequestStore on a SQLite database file. It is safe for
// concurrent use.
type Store struct {
	write *sql.DB // one connection, BEGIN IMMEDIATE: all writes queue here
	read  *sql.DB // read-only connections; write itself for ":memory:"
	path  string
	cfg   options
}

type options struct {
	logger       *slog.Logger
	busyTimeout  time.Duration
	maxReadConns int
}

// Option configures a Store.
type Option func(*options)

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithBusyTimeout sets how long a statement waits for a lock that another
// process (or a backup tool) holds on the file before failing with
// SQLITE_BUSY. Default 5s. Writers of one Store never wait here: they queue
// for its single write connection instead.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = d }
}

// WithMaxReadConns sets how many read-only connections may read at once.
// Default max(4, GOMAXPROCS); n < 1 means no limit. Reads run concurrently
// with the writer (WAL); each connection costs a little memory.
func WithMaxReadConns(n int) Option {
	return func(o *options) { o.maxReadConns = n }
}

// Open opens the SQLite database at path, creating the file if needed, and
// brings its schema up to date. path is a file path; ":memory:" gives a
// private in-memory database on a single connection, for quick experiments
// (tests should prefer a file in t.TempDir, which exercises the real
// read/write split).
//
// Every connection runs with journal_mode WAL, synchronous NORMAL (a
// committed transaction survives a crash of the process; a power loss may
// lose the last few, never corrupts), foreign_keys on and the busy timeout.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := options{
		logger:       slog.New(slog.DiscardHandler),
		busyTimeout:  5 * time.Second,
		maxReadConns: max(4, runtime.GOMAXPROCS(0)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, genpipe.Errorf(genpipe.EINVALID, "sqlite: database path %q is empty or contains '?'", path)
	}
	s := &Store{path: path, cfg: cfg}
	var err error
	if s.write, err = sql.Open("sqlite", s.dsn(false)); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.read = s.write
	if path != ":memory:" { // each connection to ":memory:" has its own database
		if s.read, err = sql.Open("sqlite", s.dsn(true)); err != nil {
			s.write.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		s.read.SetMaxOpenConns(cfg.maxReadConns)
		s.read.SetMaxIdleConns(cfg.maxReadConns)
	}
	// Migrate before the first read, so that readers open an up-to-date,
	// WAL-mode file.
	applied, err := migrateWhenFree(ctx, s.write, cfg.busyTimeout)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	cfg.logger.Info("status store open", "path", path, "migrations_applied", applied)
	return s, nil
}

// dsn returns the data source name of a write or a read-only connection. The
// pragmas are in the DSN so that the driver applies them to every
// connection it opens, not only to the first.
func (s *Store) dsn(readOnly bool) string {
	q := url.Values{}
	q.Set("_txlock", "immediate") // take the write lock at BEGIN: no deadlock on upgrade
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(s.cfg.busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Set("_query_only", "true")
	}
	return s.path + "?" + q.Encode()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes the database. Calls in flight finish first.
func (s *Store) Close() error {
	var errs []error
	if s.read != s.write {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// migrateWhenFree migrates, retrying while another connection holds the
// file. Processes opening a brand-new file at once race on switching it to
// WAL, and SQLite answers that race with SQLITE_BUSY at once instead of
// waiting busy_timeout, so we wait here, as long as busy_timeout would.
func migrateWhenFree(ctx context.Context, db *sql.DB, wait time.Duration) (applied []int, err error) {
	deadline := time.Now().Add(wait)
	err = backoff.Retry(ctx, backoff.Policy{Base: 5 * time.Millisecond, Max: 200 * time.Millisecond}, func() (err error) {
		applied, err = migrate(ctx, db, migrationFS)
		return err
	}, backoff.RetryIf(func(err error) bool { return isBusy(err) && time.Now().Before(deadline) }))
	return applied, err
}

// isBusy reports whether err is SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var se *sqlitedriver.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// migrate applies the migrations in fsys (migrations/NNNN_name.sql) that
// schema_migrations does not list yet, in version order, all in one
// transaction: a failed migration leaves the schema as it was. It returns
// the versions applied.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) (applied []int, err error) {
	todo, err := migrations.List(fsys)
	if err != nil {
		return nil, err
	}

	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: a second process opening the file waits
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		done[v] = true
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for _, m := range todo {
		if done[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, formatTime(time.Now())); err != nil {
			return nil, fmt.Errorf("migrate: record %s: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("migrate: commit: %w", err)
	}
	return applied, nil
}

// timeLayout is how timestamps are stored: UTC, fixed width, microseconds
// (PostgreSQL's precision), so that text order is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// timeColumn scans a stored timestamp into *t, in UTC.
type timeColumn struct{ t *time.Time }

func (c timeColumn) Scan(src any) error {
	switch v := src.(type) {
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	case time.Time:
		*c.t = v.UTC()
		return nil
	default:
		return fmt.Errorf("timestamp column holds %T", src)
	}
}

func (c timeColumn) parse(s string) error {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return fmt.Errorf("timestamp column: %w", err)
	}
	*c.t = t
	return nil
}
