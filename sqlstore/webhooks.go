package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/genpipe/genpipe"
)

const (
	// insertWebhook queues a delivery unless the request already has one for
	// the status. The foreign key rejects an unknown request.
	insertWebhook = `INSERT INTO webhook_deliveries (request_id, status, url, state, attempts,
		next_attempt_at, last_error, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
	ON CONFLICT (request_id, status) DO NOTHING`

	updateWebhook = `UPDATE webhook_deliveries
	SET state = $2, attempts = $3, next_attempt_at = $4, last_error = $5
	WHERE id = $1`

	// selectRequestWebhook reads the newest delivery of a request, through
	// the index of UNIQUE (request_id, status). A request has one in
	// practice: only its terminal status queues one.
	selectRequestWebhook = `SELECT id, request_id, status, url, state, attempts, next_attempt_at, last_error, created_at
	FROM webhook_deliveries WHERE request_id = $1
	ORDER BY id DESC LIMIT 1`
)

// claimDueWebhooksSQL returns d's statement that picks the due deliveries
// in due order, through the partial index webhook_deliveries_due, and
// moves their next attempt to the lease's end: $1 is now, $2 the lease's
// end, $3 the limit. MATERIALIZED makes the pick run once, whatever plan
// the UPDATE gets; RETURNING has no order of its own. The pick is named
// due_id so that id stays the updated table's, which is all that SQLite's
// RETURNING may name.
//
// Where writers run at once (PostgreSQL), the pick locks the rows it takes
// and skips rows another claim has locked (d.skipLocked), so concurrent
// claims never return one delivery; the claim outlives the row locks,
// since once it commits the rows are no longer due. SQLite runs one writer
// at a time, across processes too, so no two claims overlap.
func claimDueWebhooksSQL(d *dialect) string {
	return `WITH due AS MATERIALIZED (
		SELECT id AS due_id FROM webhook_deliveries
		WHERE state = 'pending' AND next_attempt_at <= $1
		ORDER BY next_attempt_at, id
		LIMIT $3
		` + d.skipLocked + `)
	UPDATE webhook_deliveries SET next_attempt_at = $2
	FROM due WHERE id = due_id
	RETURNING id, request_id, status, url, state, attempts, next_attempt_at, last_error, created_at`
}

// EnqueueWebhook adds a delivery unless one for the same request and status
// exists (then it does nothing and returns nil). An empty State means
// pending; a zero CreatedAt means now, a zero NextAttemptAt means
// CreatedAt. d.ID is ignored: the store assigns one. An unknown request is
// an ENOTFOUND error.
func (s *Store) EnqueueWebhook(ctx context.Context, d genpipe.WebhookDelivery) error {
	if d.State == "" {
		d.State = genpipe.WebhookPending
	}
	if err := validWebhook(d); err != nil {
		return err
	}
	if !validID(d.RequestID) {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", d.RequestID)
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now()
	}
	if d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = d.CreatedAt
	}
	_, err := s.write.ExecContext(ctx, insertWebhook, d.RequestID, d.Status, d.URL, d.State, d.Attempts,
		s.d.time(d.NextAttemptAt), d.LastError, s.d.time(d.CreatedAt))
	if s.d.isForeignKeyViolation(err) {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", d.RequestID)
	}
	if err != nil {
		return s.fail(fmt.Sprintf("enqueue webhook %s of %s", d.Status, d.RequestID), err)
	}
	return nil
}

// ClaimDueWebhooks claims at most limit pending deliveries whose
// NextAttemptAt is not after now, the longest overdue first (by
// NextAttemptAt, then ID), by setting their NextAttemptAt to now+lease; it
// returns them as stored after the claim, in ID order. One statement does
// it, so concurrent claims never return one delivery. limit and lease must
// be positive.
func (s *Store) ClaimDueWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]genpipe.WebhookDelivery, error) {
	switch {
	case limit < 1:
		return nil, genpipe.Errorf(genpipe.EINVALID, "limit %d is not positive", limit)
	case lease <= 0:
		return nil, genpipe.Errorf(genpipe.EINVALID, "lease %v is not positive", lease)
	}
	rows, err := s.write.QueryContext(ctx, s.d.claimDueWebhooks, s.d.time(now), s.d.time(now.Add(lease)), limit)
	if err != nil {
		return nil, s.fail("claim due webhooks", err)
	}
	claimed, err := scanDeliveries(rows)
	if err != nil {
		return nil, s.fail("claim due webhooks", err)
	}
	slices.SortFunc(claimed, func(a, b genpipe.WebhookDelivery) int { return cmp.Compare(a.ID, b.ID) })
	return claimed, nil
}

// scanDeliveries reads and closes rows of webhook deliveries.
func scanDeliveries(rows *sql.Rows) ([]genpipe.WebhookDelivery, error) {
	defer rows.Close()
	var out []genpipe.WebhookDelivery
	for rows.Next() {
		var d genpipe.WebhookDelivery
		if err := rows.Scan(&d.ID, &d.RequestID, &d.Status, &d.URL, &d.State, &d.Attempts,
			timeColumn{&d.NextAttemptAt}, &d.LastError, timeColumn{&d.CreatedAt}); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// UpdateWebhook records the outcome of an attempt: it stores d's State,
// Attempts, NextAttemptAt and LastError for the delivery d.ID. A delivered,
// abandoned or failed delivery is never due again; a pending one is due at
// its NextAttemptAt. An unknown ID is an ENOTFOUND error.
func (s *Store) UpdateWebhook(ctx context.Context, d genpipe.WebhookDelivery) error {
	if !validState(d.State) {
		return genpipe.Errorf(genpipe.EINVALID, "unknown webhook state %q", d.State)
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, updateWebhook, d.ID, d.State, d.Attempts,
		s.d.time(d.NextAttemptAt), d.LastError))
	if err != nil {
		return s.fail(fmt.Sprintf("update webhook %d", d.ID), err)
	}
	if n == 0 {
		return genpipe.Errorf(genpipe.ENOTFOUND, "webhook delivery %d not found", d.ID)
	}
	return nil
}

// validWebhook checks what EnqueueWebhook stores.
func validWebhook(d genpipe.WebhookDelivery) error {
	switch {
	case !d.Status.Valid():
		return genpipe.Errorf(genpipe.EINVALID, "webhook for unknown status %q", d.Status)
	case d.URL == "":
		return genpipe.Errorf(genpipe.EINVALID, "webhook has no URL")
	case !validState(d.State):
		return genpipe.Errorf(genpipe.EINVALID, "unknown webhook state %q", d.State)
	}
	return nil
}

func validState(s genpipe.WebhookState) bool {
	switch s {
	case genpipe.WebhookPending, genpipe.WebhookDelivered, genpipe.WebhookAbandoned, genpipe.WebhookFailed:
		return true
	}
	return false
}

// requestWebhook returns the newest delivery of request id, or nil when
// none is queued.
func (s *Store) requestWebhook(ctx context.Context, id string) (*genpipe.WebhookDelivery, error) {
	rows, err := s.read.QueryContext(ctx, selectRequestWebhook, id)
	if err != nil {
		return nil, err
	}
	found, err := scanDeliveries(rows)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	return &found[0], nil
}
