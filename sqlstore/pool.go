package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// A pool is one of a store's *sql.DB. Where the dialect asks for it, it
// keeps every statement it runs prepared, on each connection that ran it:
// modernc.org/sqlite otherwise compiles a statement anew on every call,
// triggers and all, which costs as much as running it. pgx keeps a cache of
// its own on each PostgreSQL connection, so the PostgreSQL pool prepares
// nothing here.
type pool struct {
	*sql.DB
	prepare bool
	stmts   sync.Map // query → *sql.Stmt
}

func newPool(db *sql.DB, prepare bool) *pool { return &pool{DB: db, prepare: prepare} }

// stmt returns query prepared, preparing it on first use.
func (p *pool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := p.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := p.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if first, raced := p.stmts.LoadOrStore(query, st); raced {
		st.Close()
		return first.(*sql.Stmt), nil
	}
	return st, nil
}

// ExecContext runs a statement that returns no rows.
func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return run(ctx, p, query,
		func() (sql.Result, error) { return p.DB.ExecContext(ctx, query, args...) },
		func(st *sql.Stmt) (sql.Result, error) { return st.ExecContext(ctx, args...) })
}

// QueryContext runs a statement that returns rows.
func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return run(ctx, p, query,
		func() (*sql.Rows, error) { return p.DB.QueryContext(ctx, query, args...) },
		func(st *sql.Stmt) (*sql.Rows, error) { return st.QueryContext(ctx, args...) })
}

// QueryRowContext runs a statement that returns at most one row.
func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) row {
	r, err := run(ctx, p, query,
		func() (row, error) { return p.DB.QueryRowContext(ctx, query, args...), nil },
		func(st *sql.Stmt) (row, error) { return st.QueryRowContext(ctx, args...), nil })
	if err != nil {
		return errRow{err}
	}
	return r
}

// run runs query on the database (direct) or, where the pool prepares,
// through its prepared statement (prepared); the error is preparing's.
func run[T any](ctx context.Context, p *pool, query string, direct func() (T, error), prepared func(*sql.Stmt) (T, error)) (T, error) {
	if !p.prepare {
		return direct()
	}
	st, err := p.stmt(ctx, query)
	if err != nil {
		var none T
		return none, err
	}
	return prepared(st)
}

// Close closes the prepared statements, then the database.
func (p *pool) Close() error {
	var errs []error
	p.stmts.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	p.stmts.Clear()
	return errors.Join(append(errs, p.DB.Close())...)
}

// row is a *sql.Row, or the error of preparing its statement.
type row interface {
	Scan(dest ...any) error
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
