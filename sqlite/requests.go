package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/genpipe/genpipe"
)

// requestColumns are the columns scanRequest reads, in its order.
const requestColumns = `id, object_id, style, title, description, webhook_url,
	COALESCE(idempotency_key, ''), owner, status, result_png_key, result_pdf_key, result_pptx_key,
	error, created_at, updated_at`

const (
	// insertRequest stores a new request unless its owner's idempotency
	// key is taken; an empty key is stored as NULL, which never collides.
	insertRequest = `INSERT INTO requests (id, object_id, style, title, description, webhook_url,
		idempotency_key, owner, status, status_rank, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10, $11, $11)
	ON CONFLICT (owner, idempotency_key) DO NOTHING`

	selectRequestByKey = `SELECT ` + requestColumns + ` FROM requests WHERE owner = $1 AND idempotency_key = $2`

	selectPublishedRequest = `SELECT ` + requestColumns + ` FROM requests WHERE id = $1 AND published`

	markPublished = `UPDATE requests SET published = TRUE WHERE id = $1`

	// advanceRequest is the whole of ApplyStatus's decision: it changes the
	// row only when the new status ranks higher, atomically.
	advanceRequest = `UPDATE requests
	SET status = $2, status_rank = $3, result_png_key = $4, result_pdf_key = $5, result_pptx_key = $6,
		error = $7, updated_at = $8
	WHERE id = $1 AND status_rank < $3`

	requestExists = `SELECT EXISTS (SELECT 1 FROM requests WHERE id = $1)`

	// countBacklog reads only the requests_backlog index, whose WHERE it
	// repeats word for word (a parameter would hide the match from SQLite).
	countBacklog = `SELECT count(*) FROM requests WHERE status = 'received' AND published`

	insertHistory = `INSERT INTO request_history (request_id, status, error, at) VALUES ($1, $2, $3, $4)`

	selectHistory = `SELECT h.status, h.error, h.at, r.result_png_key, r.result_pdf_key, r.result_pptx_key
	FROM request_history h JOIN requests r ON r.id = h.request_id
	WHERE h.request_id = $1 AND r.published
	ORDER BY h.id`
)

// CreateRequest stores r in status received, not yet published, and
// returns the stored copy (r itself is not modified). When a request with
// the same Owner and non-empty IdempotencyKey exists, published or not, it
// returns that one and created=false. r.ID must be set; r's Status, Result,
// Error and timestamps are ignored.
func (s *Store) CreateRequest(ctx context.Context, r *genpipe.Request) (*genpipe.Request, bool, error) {
	if r.ID == "" {
		return nil, false, genpipe.Errorf(genpipe.EINVALID, "request has no id")
	}
	stored := &genpipe.Request{ID: r.ID, Job: r.Job, WebhookURL: r.WebhookURL, IdempotencyKey: r.IdempotencyKey,
		Owner: r.Owner, Status: genpipe.StatusReceived}
	stored.CreatedAt = now()
	stored.UpdatedAt = stored.CreatedAt
	at := formatTime(stored.CreatedAt)

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: create request %s: %w", r.ID, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, insertRequest, r.ID, r.ObjectID, r.Style, r.Title, r.Description, r.WebhookURL,
		r.IdempotencyKey, r.Owner, genpipe.StatusReceived, genpipe.StatusReceived.Rank(), at)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: create request %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, false, fmt.Errorf("sqlite: create request %s: %w", r.ID, err)
	} else if n == 0 { // the idempotency key is taken: return its request
		twin, err := scanRequest(tx.QueryRowContext(ctx, selectRequestByKey, r.Owner, r.IdempotencyKey))
		if err != nil {
			return nil, false, fmt.Errorf("sqlite: create request %s: read request with its idempotency key: %w", r.ID, err)
		}
		return twin, false, nil
	}
	if _, err := tx.ExecContext(ctx, insertHistory, r.ID, genpipe.StatusReceived, "", at); err != nil {
		return nil, false, fmt.Errorf("sqlite: create request %s: history: %w", r.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("sqlite: create request %s: commit: %w", r.ID, err)
	}
	return stored, true, nil
}

// MarkPublished records that the request's first event is durably in
// Kafka, so that Request and History find it. Marking it again is harmless.
func (s *Store) MarkPublished(ctx context.Context, id string) error {
	res, err := s.write.ExecContext(ctx, markPublished, id)
	if err != nil {
		return fmt.Errorf("sqlite: mark request %s published: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: mark request %s published: %w", id, err)
	} else if n == 0 {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	return nil
}

// Request returns a published request, or an ENOTFOUND error for an
// unknown or unpublished one. Result is set when the request is done.
func (s *Store) Request(ctx context.Context, id string) (*genpipe.Request, error) {
	r, err := scanRequest(s.read.QueryRowContext(ctx, selectPublishedRequest, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: read request %s: %w", id, err)
	}
	return r, nil
}

// ApplyStatus moves a request to c.Status if that ranks higher than its
// current status (see genpipe.Status.Rank), storing c.Result and c.Error and
// setting UpdatedAt to c.At (now if zero), and appends c to the history.
// Otherwise it changes nothing and returns applied=false. It applies to
// requests not yet published too: the pipeline may run before
// MarkPublished returns. An unknown request is an ENOTFOUND error, an
// unknown status an EINVALID one.
func (s *Store) ApplyStatus(ctx context.Context, c genpipe.StatusChange) (bool, error) {
	if !c.Status.Valid() {
		return false, genpipe.Errorf(genpipe.EINVALID, "unknown status %q", c.Status)
	}
	at := c.At
	if at.IsZero() {
		at = now()
	}
	var result genpipe.Result
	if c.Result != nil {
		result = *c.Result
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: apply status %s to %s: %w", c.Status, c.RequestID, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, advanceRequest, c.RequestID, c.Status, c.Status.Rank(),
		result.PNGKey, result.PDFKey, result.PPTXKey, c.Error, formatTime(at))
	if err != nil {
		return false, fmt.Errorf("sqlite: apply status %s to %s: %w", c.Status, c.RequestID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: apply status %s to %s: %w", c.Status, c.RequestID, err)
	}
	if n == 0 { // not an advance, or no such request
		var exists bool
		if err := tx.QueryRowContext(ctx, requestExists, c.RequestID).Scan(&exists); err != nil {
			return false, fmt.Errorf("sqlite: apply status %s to %s: %w", c.Status, c.RequestID, err)
		}
		if !exists {
			return false, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", c.RequestID)
		}
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, insertHistory, c.RequestID, c.Status, c.Error, formatTime(at)); err != nil {
		return false, fmt.Errorf("sqlite: apply status %s to %s: history: %w", c.Status, c.RequestID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: apply status %s to %s: commit: %w", c.Status, c.RequestID, err)
	}
	return true, nil
}

// History returns the applied status changes of a published request,
// oldest first, starting with received; the done change carries the
// Result. An unknown or unpublished request is an ENOTFOUND error.
func (s *Store) History(ctx context.Context, id string) ([]genpipe.StatusChange, error) {
	rows, err := s.read.QueryContext(ctx, selectHistory, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read history of %s: %w", id, err)
	}
	defer rows.Close()
	var history []genpipe.StatusChange
	for rows.Next() {
		c := genpipe.StatusChange{RequestID: id}
		var result genpipe.Result
		if err := rows.Scan(&c.Status, &c.Error, timeColumn{&c.At},
			&result.PNGKey, &result.PDFKey, &result.PPTXKey); err != nil {
			return nil, fmt.Errorf("sqlite: read history of %s: %w", id, err)
		}
		if c.Status == genpipe.StatusDone {
			c.Result = resultOf(result)
		}
		history = append(history, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read history of %s: %w", id, err)
	}
	if len(history) == 0 { // every stored request has its received change
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	return history, nil
}

// Backlog counts the published requests still in status received.
func (s *Store) Backlog(ctx context.Context) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, countBacklog).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count backlog: %w", err)
	}
	return n, nil
}

// scanRequest reads one row of requestColumns.
func scanRequest(row *sql.Row) (*genpipe.Request, error) {
	var r genpipe.Request
	var result genpipe.Result
	err := row.Scan(&r.ID, &r.ObjectID, &r.Style, &r.Title, &r.Description, &r.WebhookURL,
		&r.IdempotencyKey, &r.Owner, &r.Status, &result.PNGKey, &result.PDFKey, &result.PPTXKey,
		&r.Error, timeColumn{&r.CreatedAt}, timeColumn{&r.UpdatedAt})
	if err != nil {
		return nil, err
	}
	if r.Status == genpipe.StatusDone {
		r.Result = resultOf(result)
	}
	return &r, nil
}

// resultOf returns &res, or nil when no key is stored.
func resultOf(res genpipe.Result) *genpipe.Result {
	if res == (genpipe.Result{}) {
		return nil
	}
	return &res
}

// now is the store's clock, in UTC at the stored precision, so that what a
// call returns equals what a later read returns.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
