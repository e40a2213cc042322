// Package postgres is genpipe's production status store: a
// genpipe.RequestStore on PostgreSQL, through pgx's connection pool
// (github.com/jackc/pgx/v5/pgxpool).
//
// Unlike SQLite, PostgreSQL lets many writers work at once, and several
// genpipe processes (API replicas, notifiers) may share one database. Every
// decision that must not race is therefore one statement that PostgreSQL
// makes atomic: CreateRequest is an INSERT ... ON CONFLICT DO NOTHING on the
// idempotency key, ApplyStatus an UPDATE that advances the request only when
// the new status ranks higher, and EnqueueWebhook an INSERT ... ON CONFLICT
// DO NOTHING on (request, status). Each of those also writes its history or
// outbox row in the same statement (a data-modifying WITH), so no explicit
// transaction is held across round trips.
//
// The schema is in migrations/*.sql, embedded, and applied at Open in one
// transaction that first takes a transaction-scoped advisory lock, so that
// processes starting at once against a fresh database migrate it once;
// schema_migrations records which ran. A later version adds a file with the
// next number, never edits an applied one. The tables are created in the
// first schema of the connection's search_path (normally public); set
// search_path in the URL to use another.
//
// Request IDs are stored as uuid: an ID that is not a UUID in canonical
// form (lowercase, with hyphens, as uuid.NewString gives) cannot be stored,
// so looking one up is an ENOTFOUND error and creating one an EINVALID one.
// Times are timestamptz (microseconds) and come back in UTC.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/migrations"
)

var _ genpipe.RequestStore = (*Store)(nil)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLock is the key of the advisory lock that serializes migrations
// ("genpipe" in ASCII). Advisory locks are per database, so stores in
// different schemas of one database migrate one after the other, which
// costs nothing but a short wait.
const migrateLock int64 = 0x67656e70697065

// Store is a genpipe.RequestStore on a PostgreSQL database. It is safe for
// concurrent use, and several processes may share one database.
type Store struct {
	pool *pgxpool.Pool
	cfg  options
}

type options struct {
	logger   *slog.Logger
	maxConns int32
}

// Option configures a Store.
type Option func(*options)

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithMaxConns sets the most connections the pool opens. Default: the URL's
// pool_max_conns parameter if set, else pgxpool's default, max(4, number of
// CPUs). Every store of every process counts against the server's
// max_connections (100 by default), so keep n × processes below it.
// n < 1 keeps the default.
func WithMaxConns(n int) Option {
	return func(o *options) { o.maxConns = int32(n) }
}

// Open connects to the PostgreSQL database that url names and brings its
// schema up to date. url is a connection string that pgx accepts, normally
// a URL: postgres://user:password@host:5432/dbname?sslmode=verify-full.
// Parameters that pgx does not know (search_path, application_name, ...)
// are sent to the server as run-time parameters; pgxpool's own ones
// (pool_max_conns, pool_max_conn_lifetime, ...) configure the pool.
//
// Open returns once the migrations are applied, which needs a connection:
// a server that is down is an error, not something to retry later.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg := options{logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	poolCfg, err := pgxpool.ParseConfig(url)
	if err != nil { // pgconn redacts the password from its message, best effort
		return nil, genpipe.Errorf(genpipe.EINVALID, "postgres: database URL: %v", err)
	}
	if cfg.maxConns > 0 {
		poolCfg.MaxConns = cfg.maxConns
	}
	poolCfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		// pgx returns timestamptz in the process's local zone by default;
		// the store's contract is UTC.
		conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", describe(poolCfg), err)
	}
	applied, err := migrate(ctx, pool, migrationFS)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", describe(poolCfg), err)
	}
	cfg.logger.Info("status store open", "database", describe(poolCfg),
		"max_conns", poolCfg.MaxConns, "migrations_applied", applied)
	return &Store{pool: pool, cfg: cfg}, nil
}

// describe names the database for errors and logs, without credentials.
func describe(c *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", c.ConnConfig.Host, c.ConnConfig.Port, c.ConnConfig.Database)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool's connections. It waits for calls in flight to
// return their connections first. It always returns nil.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies the migrations in fsys (migrations/NNNN_name.sql) that
// schema_migrations does not list yet, in version order, all in one
// transaction: a failed migration leaves the schema as it was. The
// transaction first takes the migrateLock advisory lock, so that of several
// processes starting at once against a fresh database one migrates and the
// others wait, then find nothing to do. It returns the versions applied.
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) (applied []int, err error) {
	todo, err := migrations.List(fsys)
	if err != nil {
		return nil, err
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	// Held until commit or rollback, so even CREATE TABLE IF NOT EXISTS,
	// which races with itself, runs once at a time.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	rows, _ := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	done, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for _, m := range todo {
		if slices.Contains(done, m.Version) {
			continue
		}
		// Without arguments, pgx sends the file as one simple-protocol
		// query: several statements are fine.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
			m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("migrate: record %s: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("migrate: commit: %w", err)
	}
	return applied, nil
}

// validID reports whether id can be a stored request ID: a UUID in the
// canonical form that PostgreSQL returns, so that the ID a caller stores is
// the ID it reads back.
func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// isViolation reports whether err is PostgreSQL's error code (for
// instance 23503, foreign_key_violation).
func isViolation(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// SQLSTATE codes the store maps to genpipe errors.
const (
	foreignKeyViolation = "23503"
	uniqueViolation     = "23505"
)

// now is the store's clock, in UTC at the stored precision, so that what a
// call returns equals what a later read returns.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
