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
