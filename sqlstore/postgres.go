package sqlstore

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/genpipe/genpipe"
)

// migrateLock is the key of the advisory lock that serializes migrations
// ("genpipe" in ASCII). Advisory locks are per database, so stores in
// different schemas of one database migrate one after the other, which
// costs nothing but a short wait.
const migrateLock int64 = 0x67656e70697065

// The two halves of the PostgreSQL dialect's withHistory, which
// createAndMarkSQL writes out on its own: what ends a statement that
// changes requests, as the common table expression "changed", and the
// insert that records each of its rows.
const (
	pgChanged       = `RETURNING id, status, error, updated_at`
	pgRecordHistory = `INSERT INTO request_history (request_id, status, error, at)
	SELECT id, status, error, updated_at FROM changed`
)

// postgresDialect is PostgreSQL's: times are timestamptz, a data-modifying
// WITH writes the history, and concurrent webhook claims skip each other's
// locked rows.
var postgresDialect = (&dialect{
	name:      "postgres",
	appliedAt: "timestamptz NOT NULL DEFAULT now()",
	// Held until the transaction ends, so that of several processes
	// starting at once against a fresh database one migrates and the
	// others wait, then find nothing to do; even CREATE TABLE IF NOT
	// EXISTS, which races with itself, runs once at a time.
	lockMigrations: fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, migrateLock),

	// clock_timestamp(), not now(): the time of the statement, not of the
	// transaction's start.
	clock: `clock_timestamp()`,
	later: func(secs string) string {
		return `(clock_timestamp() + make_interval(secs => ` + secs + `))`
	},
	// One history row per row the statement changed, in the same
	// statement; the statement's count is the history rows inserted. A
	// concurrent change of the same request waits for the row lock, then
	// re-checks its WHERE against the committed row, so one request's
	// history ids increase in the order its changes were applied.
	withHistory: func(stmt string) string {
		return `WITH changed AS (` + stmt + `
		` + pgChanged + `)
	` + pgRecordHistory
	},
	taskRequest: `(CASE WHEN t.request_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN t.request_id::uuid END)`,
	canceledAny: `SELECT id FROM requests WHERE status = 'canceled' AND id = ANY($1::uuid[])`,
	skipLocked:  `FOR UPDATE SKIP LOCKED`,
	forUpdate:   `FOR UPDATE`,
	lockBudget:  `SELECT pg_advisory_xact_lock(hashtext($1))`,

	time: func(t time.Time) any { return t },

	isUniqueViolation:     func(err error) bool { return pgCode(err) == "23505" },
	isForeignKeyViolation: func(err error) bool { return pgCode(err) == "23503" },
	isBusy:                func(error) bool { return false }, // writers wait for row locks instead
	isDeadlock:            func(err error) bool { return pgCode(err) == "40P01" },
	isDataError:           func(err error) bool { return strings.HasPrefix(pgCode(err), "22") }, // class 22, data exception
	arrays:                true,
	// An unnamed statement, parsed and planned at each run with its
	// arguments: a plan cached while the requests table was nearly empty
	// (a new database) scans the whole table for id = ANY($1), and stays
	// until the table is next analyzed, a minute or more later. Measured
	// on bench intake's new database: such scans took most of the
	// server's time in half the runs.
	replan: pgx.QueryExecModeCacheDescribe,
}).build()

// pgCode returns err's SQLSTATE, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// DefaultPostgresMaxConns is how many connections a PostgreSQL store opens
// at most, unless its URL says (pool_max_conns). pgxpool's own default,
// max(4, number of CPUs), follows the client's CPUs, not what the work
// needs: each of the store's calls holds a connection for its round trips,
// so n connections run at most n / RTT statements a second, two for each
// lone submission (concurrent ones share statements, see batcher). These
// figures are from before that batching: with 2.5 ms to the server and
// 32 submitters, 4 connections took 650 submissions a second, 16 took
// 1,700 and 32 took 2,000; on one machine (RTT well under a millisecond)
// the three measured alike. The pool opens connections as it needs them,
// and every store of every process counts against the server's
// max_connections (100 by default): 16 leaves room for several processes.
const DefaultPostgresMaxConns = 16

// openPostgres connects to the PostgreSQL database that url names, through
// a pgx pool that database/sql uses (stdlib.OpenDBFromPool). Statements are
// prepared once per connection: pgx's default mode, through database/sql
// too, prepares a statement on a connection the first time it runs there
// and keeps it in the connection's cache (512 statements, more than the
// store has), so a call costs one round trip. The pool's size is the URL's
// pool_max_conns, else DefaultPostgresMaxConns.
func openPostgres(ctx context.Context, url string, cfg options) (*Store, error) {
	poolCfg, err := pgxpool.ParseConfig(url)
	if err != nil { // pgconn redacts the password from its message, best effort
		return nil, genpipe.Errorf(genpipe.EINVALID, "postgres: database URL: %v", err)
	}
	if u, err := neturl.Parse(url); err == nil && !u.Query().Has("pool_max_conns") {
		poolCfg.MaxConns = DefaultPostgresMaxConns
	}
	poolCfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		// pgx returns timestamptz in the process's local zone by default;
		// the store's contract is UTC.
		conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	name := fmt.Sprintf("%s:%d/%s", poolCfg.ConnConfig.Host, poolCfg.ConnConfig.Port, poolCfg.ConnConfig.Database)
	conns, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	// database/sql keeps up to the pool's size of connections idle rather
	// than none (OpenDBFromPool's default), since otherwise every call
	// takes a connection from the pool, wraps it and closes the wrapper,
	// which costs as much CPU as a short query. It hands an idle
	// connection back to the pool after the pool's own idle time and
	// lifetime, and the pool then applies its health checks as usual.
	db := stdlib.OpenDBFromPool(conns)
	db.SetMaxOpenConns(int(poolCfg.MaxConns))
	db.SetMaxIdleConns(int(poolCfg.MaxConns))
	db.SetConnMaxIdleTime(poolCfg.MaxConnIdleTime)
	db.SetConnMaxLifetime(poolCfg.MaxConnLifetime)
	p := newPool(db, false) // pgx prepares statements itself, see pool
	s := &Store{d: postgresDialect, write: p, read: p, name: name, closeDriver: conns.Close}
	return s.open(ctx, cfg.logger, "database", name, "max_conns", poolCfg.MaxConns)
}
