package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Pool returns the store's pool, for tests that inspect the database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Migrations is the embedded schema, for tests that count its files.
var Migrations = migrationFS
