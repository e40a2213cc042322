package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	sqlitedriver "modernc.org/sqlite"
)

// When a SQLite store copies its WAL into the database file (see
// startCheckpoints).
const (
	// checkpointPages is how many pages the store's writer adds to the
	// WAL before they are copied: SQLite's own auto-checkpoint threshold
	// (1000 pages, 4 MiB at the default page size).
	checkpointPages = 1000
	// checkpointMaxWait is the longest the first page not yet copied
	// waits, however few follow it.
	checkpointMaxWait = time.Minute
	// checkpointPoll is how often the pages are counted.
	checkpointPoll = time.Second
)

// startCheckpoints copies the WAL of the file at path into the database
// file on a connection of its own, once the store's writer (write) has
// added checkpointPages pages to it or checkpointMaxWait after it added
// the first, and returns the func that stops it.
//
// SQLite would checkpoint on the committing connection, and a checkpoint
// syncs the database file: on a busy disk the store's one writer, and every
// write queued behind it (the task queue's takes among them), would wait
// for that sync, for tens to hundreds of milliseconds. A PASSIVE checkpoint
// runs beside the writer and readers and never waits for them; what it
// cannot copy yet, the next one does.
//
// It does not checkpoint on a clock: a checkpoint that copies the whole
// WAL makes the next write start the WAL over, and that write syncs the
// WAL's new header on the writer's path, about a millisecond and up to 50
// when the disk is busy. Checkpoints every second, at a few requests a
// second, made that the longest hand-over of `genpipe loadtest -scenario
// overhead`.
func startCheckpoints(path string, write *sql.DB, log *slog.Logger) (stop func(), err error) {
	db, err := sql.Open("sqlite", sqliteDSN(path, checkpointConn))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkpoints(ctx, db, write, log.With("path", path))
	}()
	return func() {
		cancel()
		<-done
		db.Close()
	}, nil
}

// checkpoints runs the checkpoints of startCheckpoints on db until ctx is
// done, counting the pages write adds to the WAL.
func checkpoints(ctx context.Context, db, write *sql.DB, log *slog.Logger) {
	tick := time.NewTicker(checkpointPoll)
	defer tick.Stop()
	pages, first := 0, time.Time{} // not yet copied; when the first was counted
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n, err := walPagesWritten(ctx, write)
			if err != nil {
				if ctx.Err() == nil {
					log.Debug("sqlite: count WAL pages", "err", err)
				}
				continue
			}
			if pages == 0 && n > 0 {
				first = now
			}
			if pages += n; !checkpointDue(pages, now.Sub(first)) {
				continue
			}
			if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				if ctx.Err() == nil {
					log.Debug("sqlite: checkpoint", "err", err)
				}
				continue // the pages stay counted: the next poll tries again
			}
			pages = 0
		}
	}
}

// checkpointDue reports whether pages the writer added to the WAL, the
// first of them waited ago, are to be copied now.
func checkpointDue(pages int, waited time.Duration) bool {
	return pages >= checkpointPages || (pages > 0 && waited >= checkpointMaxWait)
}

// walPagesWritten returns how many pages the connection of write, a
// store's one writer, added to the WAL since it was last asked (SQLite's
// SQLITE_DBSTATUS_CACHE_WRITE, reset on reading). It waits for a write
// under way to end.
func walPagesWritten(ctx context.Context, write *sql.DB) (int, error) {
	conn, err := write.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var pages int
	err = conn.Raw(func(dc any) error {
		st, ok := dc.(sqlitedriver.DBStatus)
		if !ok {
			return fmt.Errorf("driver connection %T reports no status", dc)
		}
		pages, _, err = st.Status(sqlitedriver.DBStatusCacheWrite, true)
		return err
	})
	return pages, err
}
