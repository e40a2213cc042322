package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
	sqlitedriver "modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteDialect is SQLite's: times are text in one fixed-width UTC layout
// (timeLayout), the history is written by triggers (migration 0004), and
// the one writer needs no row locks.
var sqliteDialect = (&dialect{
	name:      "sqlite",
	appliedAt: "TEXT NOT NULL", // timeLayout, as every time column
	// The migration's BEGIN IMMEDIATE (see sqliteDSN) takes the file's write
	// lock: a second process opening the file waits for it.
	lockMigrations: "",

	// SQLite's clock ticks in milliseconds; %f000 pads it to the stored
	// layout. 'now' is one instant for the whole statement.
	clock: `strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')`,
	later: func(secs string) string {
		return `strftime('%Y-%m-%dT%H:%M:%f000Z', julianday('now') + (` + secs + `) / 86400.0)`
	},
	withHistory: func(stmt string) string { return stmt }, // the triggers write it
	taskRequest: `t.request_id`,
	skipLocked:  "",
	forUpdate:   "",

	time: func(t time.Time) any { return formatTime(t) },

	isUniqueViolation: func(err error) bool {
		code := sqliteCode(err)
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	isForeignKeyViolation: func(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY },
	isBusy:                func(err error) bool { return sqliteCode(err)&0xff == sqlite3.SQLITE_BUSY },
	isDeadlock:            func(error) bool { return false }, // one writer
	isDataError:           func(err error) bool { return sqliteCode(err)&0xff == sqlite3.SQLITE_TOOBIG },
}).build()

// sqliteCode returns err's SQLite result code (extended), or 0.
func sqliteCode(err error) int {
	var se *sqlitedriver.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// sqliteBusyTimeout is how long a statement waits for a lock that another
// process (or a backup tool) holds on the file before failing with
// SQLITE_BUSY. Writers of one Store never wait here: they queue for its
// single write connection instead.
const sqliteBusyTimeout = 5 * time.Second

// openSQLite opens the SQLite database at path, creating the file if
// needed. path is a file path; ":memory:" gives a private in-memory
// database on a single connection, for quick experiments (tests should
// prefer a file in t.TempDir, which exercises the real read/write split).
//
// Every connection runs with journal_mode WAL, synchronous NORMAL (a
// committed transaction survives a crash of the process; a power loss may
// lose the last few, never corrupts), foreign_keys on and a busy timeout of
// 5s. The read pool has max(4, GOMAXPROCS) connections: reads run
// concurrently with the writer, and each connection costs a little memory.
func openSQLite(ctx context.Context, path string, cfg options) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, genpipe.Errorf(genpipe.EINVALID, "sqlite: database path %q is empty or contains '?'", path)
	}
	s := &Store{d: sqliteDialect, name: path}
	write, err := sql.Open("sqlite", sqliteDSN(path, writeConn))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	s.write = newPool(write, true)
	s.read = s.write
	if path != ":memory:" { // each connection to ":memory:" has its own database
		read, err := sql.Open("sqlite", sqliteDSN(path, readConn))
		if err != nil {
			write.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		read.SetMaxOpenConns(n)
		read.SetMaxIdleConns(n)
		s.read = newPool(read, true)
		if s.closeDriver, err = startCheckpoints(path, write, cfg.logger); err != nil {
			read.Close()
			write.Close()
			return nil, err
		}
	}
	s.group = newGroupCommit(s)
	return s.open(ctx, cfg.logger, "path", path)
}

// The connections of a SQLite store.
type sqliteConn int

const (
	writeConn      sqliteConn = iota // the one writer
	readConn                         // read-only
	checkpointConn                   // moves the WAL into the file (startCheckpoints)
)

// sqliteReadCacheKiB is the page cache of each read connection, as
// PRAGMA cache_size takes it (negative: KiB). SQLite's default, 2,000 KiB
// on each connection, fills as the database grows, and the driver's
// allocator keeps what SQLite frees: `genpipe up` after 30,000 requests
// held 11 MB more outside the Go heap than after 3,000 (18 → 29 MB) with
// the default on every connection, 3.5 MB more with this. The reads are
// lookups by key in a few indexes, whose inner pages fit in this; the rest
// comes from the OS's file cache. The writer keeps the default: its
// inserts touch every index.
const sqliteReadCacheKiB = -512

// sqliteDSN returns the data source name of a connection of kind. The
// pragmas are in the DSN so that the driver applies them to every
// connection it opens, not only to the first.
func sqliteDSN(path string, kind sqliteConn) string {
	q := url.Values{}
	q.Set("_txlock", "immediate") // take the write lock at BEGIN: no deadlock on upgrade
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(sqliteBusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	switch kind {
	case readConn:
		q.Set("_query_only", "true")
		q.Add("_pragma", "cache_size("+strconv.Itoa(sqliteReadCacheKiB)+")")
	case writeConn:
		// startCheckpoints checkpoints, not the writer; ":memory:" has no WAL.
		if path != ":memory:" {
			q.Add("_pragma", "wal_autocheckpoint(0)")
		}
	}
	return path + "?" + q.Encode()
}

// timeLayout is how SQLite stores times: UTC, fixed width, microseconds
// (PostgreSQL's precision), so that text order is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time column: %w", err)
	}
	return t, nil
}
