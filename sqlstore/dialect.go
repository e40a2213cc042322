package sqlstore

import (
	"fmt"
	"io/fs"
	"time"
)

// A dialect is what differs between the databases a Store runs on:
// sqliteDialect (sqlite.go) and postgresDialect (postgres.go). The method
// bodies and the statements are shared; the statements that need a
// database's own SQL are built once from the shared text and the fragments
// here (build).
type dialect struct {
	name string // "sqlite" or "postgres", the prefix of the store's errors

	// appliedAt defines schema_migrations.applied_at after its name: a
	// time column of the database, with its constraints.
	appliedAt string
	// lockMigrations, unless empty, runs first in the migration's
	// transaction and keeps other processes from migrating until it ends.
	lockMigrations string

	// clock is an SQL expression of the database's current time, as a
	// time column holds it; later(secs) is the same plus secs seconds, an
	// SQL expression of a float. Claim leases are measured on it: the one
	// clock every process sharing the database agrees on.
	clock string
	later func(secs string) string
	// withHistory turns a statement that inserts or updates requests
	// (setting status, error and updated_at) into one that also records
	// each changed row in request_history, at updated_at. The statement
	// still reports one affected row per changed request.
	withHistory func(stmt string) string
	// skipLocked ends the SELECT that picks the webhook deliveries a claim
	// takes, so that concurrent claims skip each other's rows instead of
	// waiting for them; empty where writers never run at once.
	skipLocked string
	// forUpdate ends the SELECT that reads a stage's clock rows in the
	// task queue's transactions, locking them until the transaction ends,
	// so that the stage's takers run one at a time; empty where writers
	// never run at once.
	forUpdate string
	// lockBudget, unless empty, runs first in StartCall's transaction with
	// the tenant and stage as $1, so that two calls checking one budget
	// run one at a time; empty where writers never run at once.
	lockBudget string

	// time returns t as a time column takes it. A timeColumn reads it back.
	time func(t time.Time) any

	// The driver's errors that the store maps to genpipe's: a unique or a
	// foreign-key constraint violated, and the database busy with another
	// connection's write (worth retrying).
	isUniqueViolation     func(error) bool
	isForeignKeyViolation func(error) bool
	isBusy                func(error) bool
	// isDeadlock reports the database's way out of two transactions
	// waiting for each other: it failed one of them.
	isDeadlock func(error) bool
	// isDataError reports a value the database refuses, the same at every
	// retry (text with NUL, a number out of the column's range): an
	// EINVALID error (see Store.fail).
	isDataError func(error) bool

	// arrays: the database takes arrays as parameters, and concurrent
	// submissions' creates and marks coalesce into one statement (see
	// batcher, write).
	arrays bool
	// replan, unless nil, goes first among the arguments of a statement
	// that finds requests by an array of ids (id = ANY($1)), so that the
	// database plans each run of it for the table as it is then (see
	// byIDs).
	replan any

	// Built by build.
	createRequest, advanceRequest, claimPublish      string // requests.go
	createClaimed                                    string // requests.go
	createBatch, markBatch, createAndMark            string // requests.go, where arrays
	claimDueWebhooks                                 string // webhooks.go
	takeClaim, renewClaim, finishClaim, releaseClaim string // claims.go
	insertTask, lockClocks, expireTasks, takeNext    string // tasks.go
	renewTasks, selectAging, stageWork               string // tasks.go
	cancelRequest, queueEndWebhook, selectHead       string // cancel.go
	selectLate                                       string // cancel.go
	// canceledAny, unless empty, selects the canceled requests among the
	// ids of an array parameter: one statement and one plan whatever the
	// number of ids (PostgreSQL; 3× faster than an IN list of 64 there).
	// Empty: CanceledRequests builds IN lists.
	canceledAny                 string
	takeClaimLive, claimRefusal string // cancel.go
	// taskRequest is the SQL expression of stage_tasks.request_id (t) as
	// requests.id compares with it: PostgreSQL's requests.id is a uuid,
	// and a task's request id need not be one.
	taskRequest                           string
	usage, abandonCalls                   string // ledger.go
	finishTask, selectClock, transitFirst string // estimate.go
	migrations                            fs.FS  // migrate.go: NNNN_name.sql, applied in version order
	createMigrations, recordMigration     string // migrate.go
}

// build fills in d's statements from the shared ones and d's fragments,
// and returns d.
func (d *dialect) build() *dialect {
	d.createRequest = d.withHistory(insertRequest)
	d.advanceRequest = d.withHistory(updateRequestStatus)
	d.claimPublish = claimPublishSQL(d)
	d.createClaimed = createClaimedSQL(d)
	if d.arrays {
		d.createBatch, d.markBatch, d.createAndMark = createBatchSQL(d), markPublishedAny(1), createAndMarkSQL(d)
	}
	d.claimDueWebhooks = claimDueWebhooksSQL(d)
	d.takeClaim, d.renewClaim, d.finishClaim, d.releaseClaim = claimSQL(d)
	d.cancelRequest, d.queueEndWebhook, d.selectHead, d.takeClaimLive, d.claimRefusal = cancelSQL(d)
	d.selectLate = `SELECT id, request_id, replay, tenant, priority, weight, start_by FROM stage_tasks
	WHERE stage = $1 AND state = 'waiting' AND start_by IS NOT NULL AND ` + lateBy(d, "start_by") + `
	ORDER BY start_by
	LIMIT ` + fmt.Sprint(lateBatch)
	d.insertTask, d.lockClocks, d.expireTasks, d.takeNext, d.renewTasks, d.selectAging, d.stageWork = taskSQL(d)
	d.usage, d.abandonCalls = ledgerSQL(d)
	d.finishTask, d.selectClock, d.transitFirst = estimateSQL(d)
	d.migrations = mustSub(migrationFiles, "migrations/"+d.name)
	d.createMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text    NOT NULL,
		applied_at ` + d.appliedAt + `
	)`
	d.recordMigration = `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, ` + d.clock + `)`
	return d
}

// timeColumn scans a time column into *t, in UTC: PostgreSQL's timestamptz
// arrives as a time.Time, SQLite's text as a string (see parseTime).
type timeColumn struct{ t *time.Time }

func (c timeColumn) Scan(src any) error {
	var err error
	switch v := src.(type) {
	case time.Time:
		*c.t = v.UTC()
	case string:
		*c.t, err = parseTime(v)
	case []byte:
		*c.t, err = parseTime(string(v))
	default:
		err = fmt.Errorf("time column holds %T", src)
	}
	return err
}

// nullTimeColumn scans a time column that may be NULL into *t: the zero
// time for NULL.
type nullTimeColumn struct{ t *time.Time }

func (c nullTimeColumn) Scan(src any) error {
	if src == nil {
		*c.t = time.Time{}
		return nil
	}
	return timeColumn(c).Scan(src)
}

// nullTime returns t as a time column takes it, or NULL for the zero time.
func (s *Store) nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.d.time(t)
}

// storedTime is t as a time column gives it back: UTC, to the microsecond.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}
