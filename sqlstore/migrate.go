package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe/backoff"
)

// migrationFiles holds each dialect's migrations, in migrations/{name}.
//
//go:embed migrations/*/*.sql
var migrationFiles embed.FS

// migration is one schema change: a file NNNN_name.sql.
type migration struct {
	version int    // NNNN of the file name, ≥ 1
	name    string // the file name, e.g. 0001_init.sql
	sql     string // the file's statements
}

// listMigrations reads *.sql from fsys, sorted by version. A file not named
// NNNN_name.sql, or two files with one version, is an error.
func listMigrations(fsys fs.FS) ([]migration, error) {
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var all []migration
	for _, name := range files {
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version < 1 {
			return nil, fmt.Errorf("migrate: %s: name is not NNNN_name.sql", name)
		}
		if i := slices.IndexFunc(all, func(m migration) bool { return m.version == version }); i >= 0 {
			return nil, fmt.Errorf("migrate: %s and %s have the same version", all[i].name, name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		all = append(all, migration{version: version, name: name, sql: string(body)})
	}
	slices.SortFunc(all, func(a, b migration) int { return a.version - b.version })
	return all, nil
}

// migrateWhenFree migrates, retrying while another connection holds the
// database (d.isBusy) for up to sqliteBusyTimeout. Processes opening a
// brand-new SQLite file at once race on switching it to WAL, and SQLite
// answers that race with SQLITE_BUSY at once instead of waiting its busy
// timeout, so we wait here, as long as the busy timeout would. PostgreSQL is
// never busy: its migrations wait for the advisory lock instead.
func migrateWhenFree(ctx context.Context, db *sql.DB, d *dialect, fsys fs.FS) (applied []int, err error) {
	deadline := time.Now().Add(sqliteBusyTimeout)
	err = backoff.Retry(ctx, backoff.Policy{Base: 5 * time.Millisecond, Max: 200 * time.Millisecond}, func() (err error) {
		applied, err = migrate(ctx, db, d, fsys)
		return err
	}, backoff.RetryIf(func(err error) bool { return d.isBusy(err) && time.Now().Before(deadline) }))
	return applied, err
}

// migrate applies the migrations in fsys that schema_migrations does not
// list yet, in version order, all in one transaction: a failed migration
// leaves the schema as it was. The transaction first takes d's migration
// lock (SQLite's BEGIN IMMEDIATE takes the write lock by itself), so that
// of several processes opening one database at once, one migrates and the
// others wait, then find nothing to do. It returns the versions applied.
func migrate(ctx context.Context, db *sql.DB, d *dialect, fsys fs.FS) (applied []int, err error) {
	todo, err := listMigrations(fsys)
	if err != nil {
		return nil, err
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() // after Commit, a no-op
	if d.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, d.lockMigrations); err != nil {
			return nil, fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.createMigrations); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		done[v] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for _, m := range todo {
		if done[m.version] {
			continue
		}
		// Without arguments, both drivers run every statement of the
		// file (pgx as one simple-protocol query).
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, d.recordMigration, m.version, m.name); err != nil {
			return nil, fmt.Errorf("migrate: record %s: %w", m.name, err)
		}
		applied = append(applied, m.version)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("migrate: commit: %w", err)
	}
	return applied, nil
}

// mustSub returns fsys's subtree dir, which go:embed guarantees exists.
func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
