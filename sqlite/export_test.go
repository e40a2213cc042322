package sqlite

import "database/sql"

// Migrate and Migrations let tests apply migrations of their own.
var (
	Migrate    = migrate
	Migrations = migrationFS
)

// WriteDB and ReadDB return the store's pools, for tests that inspect the
// connections.
func (s *Store) WriteDB() *sql.DB { return s.write }
func (s *Store) ReadDB() *sql.DB  { return s.read }
