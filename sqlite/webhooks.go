package sqlite

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
	// the status.
	insertWebhook = `INSERT INTO webhook_deliveries (request_id, status, url, state, attempts,
		next_attempt_at, last_error, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
	ON CONFLICT (request_id, status) DO NOTHING`

	selectDueWebhooks = `SELECT id, request_id, status, url, state, attempts, next_attempt_at, last_error, created_at
	FROM webhook_deliveries
	WHERE state = 'pending' AND next_attempt_at <= $1
	ORDER BY next_attempt_at, id
	LIMIT $2`

	// claimDueWebhooks picks the due deliveries in due order (RETURNING
	// has no order of its own) and moves their next attempt to the lease's
	// end.
	claimDueWebhooks = `UPDATE webhook_deliveries SET next_attempt_at = $2
	WHERE id IN (SELECT id FROM webhook_deliveries
		WHERE state = 'pending' AND next_attempt_at <= $1
		ORDER BY next_attempt_at, id
		LIMIT $3)
	RETURNING id, request_id, status, url, state, attempts, next_attempt_at, last_error, created_at`

	updateWebhook = `UPDATE webhook_deliveries
	SET state = $2, attempts = $3, next_attempt_at = $4, last_error = $5
	WHERE id = $1`
)

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
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now()
	}
	if d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = d.CreatedAt
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: enqueue webhook %s of %s: %w", d.Status, d.RequestID, err)
	}
	defer tx.Rollback()
	var exists bool
	if err := tx.QueryRowContext(ctx, requestExists, d.RequestID).Scan(&exists); err != nil {
		return fmt.Errorf("sqlite: enqueue webhook %s of %s: %w", d.Status, d.RequestID, err)
	}
	if !exists {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", d.RequestID)
	}
	if _, err := tx.ExecContext(ctx, insertWebhook, d.RequestID, d.Status, d.URL, d.State, d.Attempts,
		formatTime(d.NextAttemptAt), d.LastError, formatTime(d.CreatedAt)); err != nil {
		return fmt.Errorf("sqlite: enqueue webhook %s of %s: %w", d.Status, d.RequestID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: enqueue webhook %s of %s: commit: %w", d.Status, d.RequestID, err)
	}
	return nil
}

// DueWebhooks returns at most limit pending deliveries whose NextAttemptAt
// is not after now, the longest overdue first (by NextAttemptAt, then ID).
// It claims nothing. limit must be positive.
func (s *Store) DueWebhooks(ctx context.Context, now time.Time, limit int) ([]genpipe.WebhookDelivery, error) {
	if limit < 1 {
		return nil, genpipe.Errorf(genpipe.EINVALID, "limit %d is not positive", limit)
	}
	rows, err := s.read.QueryContext(ctx, selectDueWebhooks, formatTime(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due webhooks: %w", err)
	}
	due, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due webhooks: %w", err)
	}
	return due, nil
}

// ClaimDueWebhooks claims at most limit pending deliveries whose
// NextAttemptAt is not after now, the longest overdue first, by setting
// their NextAttemptAt to now+lease; it returns them as stored after the
// claim, in ID order. One UPDATE in a write transaction does it: SQLite
// serializes writers, across processes too, so no two claims overlap.
// limit and lease must be positive.
func (s *Store) ClaimDueWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]genpipe.WebhookDelivery, error) {
	if err := validWebhookClaim(lease, limit); err != nil {
		return nil, err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim due webhooks: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, claimDueWebhooks, formatTime(now), formatTime(now.Add(lease)), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim due webhooks: %w", err)
	}
	claimed, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim due webhooks: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: claim due webhooks: commit: %w", err)
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
// Attempts, NextAttemptAt and LastError for the delivery d.ID. A delivered
// or abandoned delivery is never due again; a pending one is due at its
// NextAttemptAt. An unknown ID is an ENOTFOUND error.
func (s *Store) UpdateWebhook(ctx context.Context, d genpipe.WebhookDelivery) error {
	if !validState(d.State) {
		return genpipe.Errorf(genpipe.EINVALID, "unknown webhook state %q", d.State)
	}
	res, err := s.write.ExecContext(ctx, updateWebhook, d.ID, d.State, d.Attempts,
		formatTime(d.NextAttemptAt), d.LastError)
	if err != nil {
		return fmt.Errorf("sqlite: update webhook %d: %w", d.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: update webhook %d: %w", d.ID, err)
	} else if n == 0 {
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

// validWebhookClaim checks the arguments of ClaimDueWebhooks.
func validWebhookClaim(lease time.Duration, limit int) error {
	switch {
	case limit < 1:
		return genpipe.Errorf(genpipe.EINVALID, "limit %d is not positive", limit)
	case lease <= 0:
		return genpipe.Errorf(genpipe.EINVALID, "lease %v is not positive", lease)
	}
	return nil
}

func validState(s genpipe.WebhookState) bool {
	switch s {
	case genpipe.WebhookPending, genpipe.WebhookDelivered, genpipe.WebhookAbandoned:
		return true
	}
	return false
}
