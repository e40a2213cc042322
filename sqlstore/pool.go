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
	if !p.prepare {
		return p.DB.ExecContext(ctx, query, args...)
	}
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext runs a statement that returns rows.
func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if !p.prepare {
		return p.DB.QueryContext(ctx, query, args...)
	}
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs a statement that returns at most one row.
func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) row {
	if !p.prepare {
		return p.DB.QueryRowContext(ctx, query, args...)
	}
	st, err := p.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
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
