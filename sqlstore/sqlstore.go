// Package sqlstore is genpipe's status store: genpipe.RequestStore,
// genpipe.WebhookOutbox and genpipe.ClaimStore on a SQL database through
// database/sql, either SQLite (modernc.org/sqlite, pure Go, driver name
// "sqlite"), the embedded default, or PostgreSQL (pgx through its
// database/sql adapter), for production.
//
// Every method and every statement is written once, for both databases.
// What differs is a dialect (dialect.go): how each database opens, its
// schema (migrations/sqlite, migrations/postgres), how a time is written,
// how the driver's errors are classified, and a handful of SQL fragments:
// the database's clock, how a statement also writes the status history,
// and how concurrent webhook claims pass each other. The SQLite store also
// keeps its statements prepared (see pool); pgx does that by itself.
//
// Every decision that must not race is one statement that the database
// makes atomic, so no transaction is held across round trips:
// CreateRequest is an INSERT ... ON CONFLICT DO NOTHING on the idempotency
// key, ApplyStatus an UPDATE that advances the request only when the new
// status ranks higher (each also writes the history row: PostgreSQL in a
// data-modifying WITH, SQLite in a trigger), ClaimPublish an UPDATE that
// takes the publish claim only when the request is unpublished and no
// lease on it runs, EnqueueWebhook an INSERT ...
// ON CONFLICT DO NOTHING on (request, status), ClaimStage an upsert that
// takes the claim only when it is free. PostgreSQL lets many writers work
// at once, and several genpipe processes may share one database; what a
// statement costs its server is mostly per statement, so a PostgreSQL
// store coalesces concurrent submissions' inserts into one multi-row
// statement, and their MarkPublished calls into another (batch.go). SQLite
// allows one writer at a time: rather than let writers collide and sleep in
// its busy handler, a SQLite store does every write on one connection, so
// writers queue in Go, and reads on a pool of read-only connections that,
// in WAL mode, read while the writer writes; SQLite's busy timeout still
// covers another process using the same file.
//
// The schema of each database is in migrations/DIALECT/NNNN_name.sql,
// embedded, and applied at Open in one transaction; schema_migrations
// records which ran. A later version adds a file with the next number, never
// edits an applied one.
//
// Request IDs are UUIDs in canonical form (lowercase, with hyphens, as
// uuid.NewString gives): PostgreSQL stores them as uuid, and both databases
// answer alike for any other ID: looking one up is an ENOTFOUND error,
// creating one an EINVALID one. Times come back in UTC, at microsecond
// precision (claim leases on SQLite at millisecond precision: its clock's).
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe"
)

var (
	_ genpipe.RequestStore  = (*Store)(nil)
	_ genpipe.WebhookOutbox = (*Store)(nil)
	_ genpipe.ClaimStore    = (*Store)(nil)
)

// Store is the status store on one database. It is safe for concurrent use.
type Store struct {
	d     *dialect
	write *pool  // every write; on SQLite one connection, so writes queue here
	read  *pool  // every read that needs no write; on PostgreSQL write itself
	name  string // the database in errors and logs, without credentials
	// closeDriver closes what the *sql.DBs run on, after them: pgx's
	// pool on PostgreSQL; a SQLite file's checkpoints (see
	// startCheckpoints).
	closeDriver func()
	txPrepared  atomic.Bool // the task queue's statements are prepared (see prepareTxStmts)
	// group, on SQLite, runs the writes of concurrent submissions in one
	// transaction (see grouped); nil on PostgreSQL.
	group *groupCommit
	// writes, where the dialect takes arrays (PostgreSQL), coalesces
	// concurrent CreateRequest, CreateClaimed and MarkPublished calls
	// into one statement (see batcher, write); nil on SQLite.
	writes *batcher[write, bool]
}

type options struct {
	logger *slog.Logger
}

// Option configures a Store.
type Option func(*options)

// WithLogger sets the logger, which logs one line when the store opens.
// Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// DefaultURL is the database genpipe's commands open unless told
// otherwise: a SQLite file in the working directory.
const DefaultURL = "sqlite:genpipe.db"

// errURL is the answer to a URL Open does not know. It does not quote the
// URL: a URL may hold a password.
var errURL = genpipe.Errorf(genpipe.EINVALID, "database URL: want sqlite:PATH or postgres://user:password@host:port/dbname")

// CheckURL returns an EINVALID error unless url is one Open knows how to
// open. It does not connect: a command checks its flags with it at start.
func CheckURL(url string) error {
	if _, _, ok := parseURL(url); !ok {
		return errURL
	}
	return nil
}

// parseURL tells which database url names and what its driver opens.
func parseURL(url string) (kind, target string, ok bool) {
	switch {
	case strings.HasPrefix(url, "sqlite:") && len(url) > len("sqlite:"):
		return "sqlite", strings.TrimPrefix(url, "sqlite:"), true
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return "postgres", url, true
	}
	return "", "", false
}

// Open opens the database that url names and brings its schema up to date:
//
//   - sqlite:PATH is the SQLite file at PATH, created if needed; see
//     openSQLite for its settings. sqlite::memory: is a private in-memory
//     database on one connection, for quick experiments.
//   - postgres://... or postgresql://... is a PostgreSQL database, as pgx
//     reads the URL: postgres://user:password@host:5432/dbname?sslmode=verify-full.
//     Parameters that pgx does not know (search_path, application_name, ...)
//     are sent to the server as run-time parameters; pgxpool's own
//     (pool_max_conns, by default DefaultPostgresMaxConns;
//     pool_max_conn_lifetime, ...) configure the pool. The tables are
//     created in the first schema of search_path (normally public).
//
// Anything else is an EINVALID error. Open returns once the migrations are
// applied, which needs the database: a PostgreSQL server that is down is an
// error, not something to retry later.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg := options{logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	kind, target, ok := parseURL(url)
	switch {
	case !ok:
		return nil, errURL
	case kind == "sqlite":
		return openSQLite(ctx, target, cfg)
	default:
		return openPostgres(ctx, target, cfg)
	}
}

// open finishes opening a store on its pools: it migrates, checks that the
// read pool answers and logs. On an error it closes the store.
func (s *Store) open(ctx context.Context, log *slog.Logger, attrs ...any) (*Store, error) {
	if s.d.arrays {
		s.writes = newBatcher(s.writeBatch)
	}
	// Migrate before the first read, so that SQLite's readers open an
	// up-to-date, WAL-mode file.
	applied, err := migrateWhenFree(ctx, s.write.DB, s.d, s.d.migrations)
	if err == nil && s.read != s.write {
		err = s.read.PingContext(ctx)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: open %s: %w", s.d.name, s.name, err)
	}
	log.Info("status store open", append(attrs, "migrations_applied", applied)...)
	return s, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return s.fail("ping", err)
	}
	if s.read != s.write {
		if err := s.read.PingContext(ctx); err != nil {
			return s.fail("ping", err)
		}
	}
	return nil
}

// Close closes the database. Calls in flight finish first. Closing twice
// is harmless.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.close()
	}
	var errs []error
	if s.read != s.write {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if s.closeDriver != nil {
		s.closeDriver()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close %s: %w", s.d.name, s.name, err)
	}
	return nil
}

// fail wraps err, the failure of what, in the store's name; a value the
// database refuses is also an EINVALID error.
func (s *Store) fail(what string, err error) error {
	if s.d.isDataError(err) { // the data, not the database: no retry helps
		return fmt.Errorf("%s: %s: %w: %w", s.d.name, what, err, genpipe.Errorf(genpipe.EINVALID, "the database refuses the data"))
	}
	return fmt.Errorf("%s: %s: %w", s.d.name, what, err)
}

// now is the store's clock for the times callers see (CreatedAt, a zero
// StatusChange.At), in UTC at the stored precision, so that what a call
// returns equals what a later read returns. Claim leases use the
// database's clock instead (see dialect.clock).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
