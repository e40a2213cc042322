package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
)

// WriteDB and ReadDB return the store's pools, for tests that inspect the
// database.
func (s *Store) WriteDB() *sql.DB { return s.write.DB }
func (s *Store) ReadDB() *sql.DB  { return s.read.DB }

// Migrate applies the migrations in fsys to the store's database, for tests
// that bring migrations of their own.
func (s *Store) Migrate(ctx context.Context, fsys fs.FS) ([]int, error) {
	return migrate(ctx, s.write.DB, s.d, fsys)
}

// Migrations returns the store's embedded migrations.
func (s *Store) Migrations() fs.FS { return s.d.migrations }

// The embedded migrations of each database.
var (
	SQLiteMigrations   = sqliteDialect.migrations
	PostgresMigrations = postgresDialect.migrations
)

// GroupTransactions returns how many transactions the store's group
// commit began, and WaitingWrites how many calls wait for theirs (0 and 0
// where there is none: PostgreSQL).
func (s *Store) GroupTransactions() int64 {
	if s.group == nil {
		return 0
	}
	return s.group.transactions.Load()
}

func (s *Store) WaitingWrites() int64 {
	if s.group == nil {
		return 0
	}
	return s.group.waiting.Load()
}

// LargestBatch returns the most calls one batch of the store's took (0
// where it batches none: SQLite).
func (s *Store) LargestBatch() int {
	if s.writes == nil {
		return 0
	}
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	return s.writes.largest
}

// HoldBatches keeps the store's batcher from starting batches, as if
// maxBatchesInFlight batches ran, until release; calls queue meanwhile.
// QueuedCalls counts them. (Nothing and 0 on SQLite.)
func (s *Store) HoldBatches() (release func()) {
	if s.writes == nil {
		return func() {}
	}
	return s.writes.hold()
}

func (s *Store) QueuedCalls() int {
	if s.writes == nil {
		return 0
	}
	return s.writes.queued()
}

// hold takes every slot of b until release.
func (b *batcher[T, R]) hold() (release func()) {
	b.mu.Lock()
	b.running += maxBatchesInFlight
	b.mu.Unlock()
	return func() {
		// Free all but one slot, and hand that one on as a finished
		// batch would: it takes what queued meanwhile.
		b.mu.Lock()
		b.running -= maxBatchesInFlight - 1
		b.mu.Unlock()
		b.handOn()
	}
}

// queued counts the calls in b's queue.
func (b *batcher[T, R]) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}
