package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/genpipe/genpipe"
)

// requestColumns are the columns scanRequest reads, in its order.
const requestColumns = `id, object_id, style, title, description, webhook_url,
	COALESCE(idempotency_key, ''), owner, status, result_png_key, result_pdf_key, result_pptx_key,
	error, created_at, updated_at`

const (
	// createRequest stores a new request and its received change, unless
	// its owner's idempotency key is taken (then it changes nothing: 0
	// rows). An empty key is stored as NULL, which never collides. Of
	// concurrent inserts with one key, PostgreSQL lets the first commit and
	// turns the others, which wait for it, into DO NOTHING.
	createRequest = `WITH created AS (
		INSERT INTO requests (id, object_id, style, title, description, webhook_url,
			idempotency_key, owner, status, status_rank, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10, $11, $11)
		ON CONFLICT (owner, idempotency_key) DO NOTHING
		RETURNING id, status, created_at
	)
	INSERT INTO request_history (request_id, status, at)
	SELECT id, status, created_at FROM created`

	selectRequestByKey = `SELECT ` + requestColumns + ` FROM requests WHERE owner = $1 AND idempotency_key = $2`

	selectPublishedRequest = `SELECT ` + requestColumns + ` FROM requests WHERE id = $1 AND published`

	markPublished = `UPDATE requests SET published = TRUE WHERE id = $1`

	// advanceRequest is the whole of ApplyStatus's decision: it changes the
	// row only when the new status ranks higher, atomically, and records
	// the change in the history in the same statement (1 row), or does
	// nothing (0 rows). A concurrent change of the same request waits for
	// the row lock, then re-checks the rank against the committed row.
	advanceRequest = `WITH advanced AS (
		UPDATE requests
		SET status = $2, status_rank = $3, result_png_key = $4, result_pdf_key = $5, result_pptx_key = $6,
			error = $7, updated_at = $8
		WHERE id = $1 AND status_rank < $3
		RETURNING id, status, error, updated_at
	)
	INSERT INTO request_history (request_id, status, error, at)
	SELECT id, status, error, updated_at FROM advanced`

	requestExists = `SELECT EXISTS (SELECT 1 FROM requests WHERE id = $1)`

	// countBacklog reads only the requests_backlog index, whose WHERE it
	// repeats word for word so that the planner sees the match.
	countBacklog = `SELECT count(*) FROM requests WHERE status = 'received' AND published`

	selectHistory = `SELECT h.status, h.error, h.at, r.result_png_key, r.result_pdf_key, r.result_pptx_key
	FROM request_history h JOIN requests r ON r.id = h.request_id
	WHERE h.request_id = $1 AND r.published
	ORDER BY h.id`
)

// CreateRequest stores r in status received, not yet published, and
// returns the stored copy (r itself is not modified). When a request with
// the same Owner and non-empty IdempotencyKey exists, published or not, it
// returns that one and created=false; concurrent calls with one owner and
// key create exactly one request. r.ID must be a UUID (EINVALID otherwise); an ID already
// stored is an ECONFLICT error. r's Status, Result, Error and timestamps are
// ignored.
func (s *Store) CreateRequest(ctx context.Context, r *genpipe.Request) (*genpipe.Request, bool, error) {
	if r.ID == "" {
		return nil, false, genpipe.Errorf(genpipe.EINVALID, "request has no id")
	}
	if !validID(r.ID) {
		return nil, false, genpipe.Errorf(genpipe.EINVALID, "request id %q is not a UUID", r.ID)
	}
	stored := &genpipe.Request{ID: r.ID, Job: r.Job, WebhookURL: r.WebhookURL, IdempotencyKey: r.IdempotencyKey,
		Owner: r.Owner, Status: genpipe.StatusReceived}
	stored.CreatedAt = now()
	stored.UpdatedAt = stored.CreatedAt

	tag, err := s.pool.Exec(ctx, createRequest, r.ID, r.ObjectID, r.Style, r.Title, r.Description, r.WebhookURL,
		r.IdempotencyKey, r.Owner, genpipe.StatusReceived, genpipe.StatusReceived.Rank(), stored.CreatedAt)
	if isViolation(err, uniqueViolation) { // the key has its own ON CONFLICT: this is the id
		return nil, false, genpipe.Errorf(genpipe.ECONFLICT, "request %s already exists", r.ID)
	}
	if err != nil {
		return nil, false, fmt.Errorf("postgres: create request %s: %w", r.ID, err)
	}
	if tag.RowsAffected() == 0 { // the idempotency key is taken: return its request
		twin, err := scanRequest(s.pool.QueryRow(ctx, selectRequestByKey, r.Owner, r.IdempotencyKey))
		if err != nil {
			return nil, false, fmt.Errorf("postgres: create request %s: read request with its idempotency key: %w", r.ID, err)
		}
		return twin, false, nil
	}
	return stored, true, nil
}

// MarkPublished records that the request's first event is durably in
// Kafka, so that Request and History find it. Marking it again is harmless.
// An unknown request is an ENOTFOUND error.
func (s *Store) MarkPublished(ctx context.Context, id string) error {
	if !validID(id) {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	tag, err := s.pool.Exec(ctx, markPublished, id)
	if err != nil {
		return fmt.Errorf("postgres: mark request %s published: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	return nil
}

// Request returns a published request, or an ENOTFOUND error for an
// unknown or unpublished one. Result is set when the request is done.
func (s *Store) Request(ctx context.Context, id string) (*genpipe.Request, error) {
	if !validID(id) {
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	r, err := scanRequest(s.pool.QueryRow(ctx, selectPublishedRequest, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read request %s: %w", id, err)
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
	if !validID(c.RequestID) {
		return false, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", c.RequestID)
	}
	at := c.At
	if at.IsZero() {
		at = now()
	}
	var result genpipe.Result
	if c.Result != nil {
		result = *c.Result
	}
	tag, err := s.pool.Exec(ctx, advanceRequest, c.RequestID, c.Status, c.Status.Rank(),
		result.PNGKey, result.PDFKey, result.PPTXKey, c.Error, at)
	if err != nil {
		return false, fmt.Errorf("postgres: apply status %s to %s: %w", c.Status, c.RequestID, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	// Not an advance, or no such request.
	var exists bool
	if err := s.pool.QueryRow(ctx, requestExists, c.RequestID).Scan(&exists); err != nil {
		return false, fmt.Errorf("postgres: apply status %s to %s: %w", c.Status, c.RequestID, err)
	}
	if !exists {
		return false, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", c.RequestID)
	}
	return false, nil
}

// History returns the applied status changes of a published request,
// oldest first (in the order they were applied), starting with received;
// the done change carries the Result. An unknown or unpublished request is
// an ENOTFOUND error.
func (s *Store) History(ctx context.Context, id string) ([]genpipe.StatusChange, error) {
	if !validID(id) {
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	rows, _ := s.pool.Query(ctx, selectHistory, id) // CollectRows reports the error
	history, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (genpipe.StatusChange, error) {
		c := genpipe.StatusChange{RequestID: id}
		var result genpipe.Result
		err := row.Scan(&c.Status, &c.Error, &c.At, &result.PNGKey, &result.PDFKey, &result.PPTXKey)
		if c.Status == genpipe.StatusDone {
			c.Result = resultOf(result)
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read history of %s: %w", id, err)
	}
	if len(history) == 0 { // every stored request has its received change
		return nil, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	return history, nil
}

// Backlog counts the published requests still in status received.
func (s *Store) Backlog(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, countBacklog).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count backlog: %w", err)
	}
	return n, nil
}

// scanRequest reads one row of requestColumns.
func scanRequest(row pgx.Row) (*genpipe.Request, error) {
	var r genpipe.Request
	var result genpipe.Result
	err := row.Scan(&r.ID, &r.ObjectID, &r.Style, &r.Title, &r.Description, &r.WebhookURL,
		&r.IdempotencyKey, &r.Owner, &r.Status, &result.PNGKey, &result.PDFKey, &result.PPTXKey,
		&r.Error, &r.CreatedAt, &r.UpdatedAt)
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
