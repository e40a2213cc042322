package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/genpipe/genpipe"
)

const (
	// insertWebhook queues a delivery unless the request already has one for
	// the status. The foreign key rejects an unknown request.
	insertWebhook = `INSERT INTO webhook_deliveries (request_id, status, url, state, attempts,
		next_attempt_at, last_error, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
	ON CONFLICT (request_id, status) DO NOTHING`

	// selectDueWebhooks reads through the partial index
	// webhook_deliveries_due. It takes no row locks: it only looks.
	selectDueWebhooks = `SELECT id, request_id, status, url, state, attempts, next_attempt_at, last_error, created_at
	FROM webhook_deliveries
	WHERE state = 'pending' AND next_attempt_at <= $1
	ORDER BY next_attempt_at, id
	LIMIT $2`

	// claimDueWebhooks locks the due rows it picks, skipping rows another
	// claim has locked, and moves their next attempt to the lease's end in
	// the same statement, so the claim outlives the row locks: once it
	// commits the rows are no longer due. MATERIALIZED makes the pick run
	// once, whatever plan the UPDATE gets.
	claimDueWebhooks = `WITH due AS MATERIALIZED (
		SELECT id FROM webhook_deliveries
		WHERE state = 'pending' AND next_attempt_at <= $1
		ORDER BY next_attempt_at, id
		LIMIT $3
		FOR UPDATE SKIP LOCKED)
	UPDATE webhook_deliveries w SET next_attempt_at = $2
	FROM due WHERE w.id = due.id
	RETURNING w.id, w.request_id, w.status, w.url, w.state, w.attempts, w.next_attempt_at, w.last_error, w.created_at`

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
	if !validID(d.RequestID) {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", d.RequestID)
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now()
	}
	if d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = d.CreatedAt
	}
	_, err := s.pool.Exec(ctx, insertWebhook, d.RequestID, d.Status, d.URL, d.State, d.Attempts,
		d.NextAttemptAt, d.LastError, d.CreatedAt)
	if isViolation(err, foreignKeyViolation) {
		return genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", d.RequestID)
	}
	if err != nil {
		return fmt.Errorf("postgres: enqueue webhook %s of %s: %w", d.Status, d.RequestID, err)
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
	rows, _ := s.pool.Query(ctx, selectDueWebhooks, now, limit) // collectDeliveries reports the error
	due, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: due webhooks: %w", err)
	}
	return due, nil
}

// ClaimDueWebhooks claims at most limit pending deliveries whose
// NextAttemptAt is not after now, the longest overdue first, by setting
// their NextAttemptAt to now+lease; it returns them as stored after the
// claim, in ID order. Concurrent claims skip each other's rows (FOR UPDATE
// SKIP LOCKED) instead of waiting, so they never return the same delivery.
// limit and lease must be positive.
func (s *Store) ClaimDueWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]genpipe.WebhookDelivery, error) {
	switch {
	case limit < 1:
		return nil, genpipe.Errorf(genpipe.EINVALID, "limit %d is not positive", limit)
	case lease <= 0:
		return nil, genpipe.Errorf(genpipe.EINVALID, "lease %v is not positive", lease)
	}
	rows, _ := s.pool.Query(ctx, claimDueWebhooks, now, now.Add(lease), limit) // collectDeliveries reports the error
	claimed, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim due webhooks: %w", err)
	}
	slices.SortFunc(claimed, func(a, b genpipe.WebhookDelivery) int { return cmp.Compare(a.ID, b.ID) })
	return claimed, nil
}

func collectDeliveries(rows pgx.Rows) ([]genpipe.WebhookDelivery, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (genpipe.WebhookDelivery, error) {
		var d genpipe.WebhookDelivery
		err := row.Scan(&d.ID, &d.RequestID, &d.Status, &d.URL, &d.State, &d.Attempts,
			&d.NextAttemptAt, &d.LastError, &d.CreatedAt)
		return d, err
	})
}

// UpdateWebhook records the outcome of an attempt: it stores d's State,
// Attempts, NextAttemptAt and LastError for the delivery d.ID. A delivered
// or abandoned delivery is never due again; a pending one is due at its
// NextAttemptAt. An unknown ID is an ENOTFOUND error.
func (s *Store) UpdateWebhook(ctx context.Context, d genpipe.WebhookDelivery) error {
	if !validState(d.State) {
		return genpipe.Errorf(genpipe.EINVALID, "unknown webhook state %q", d.State)
	}
	tag, err := s.pool.Exec(ctx, updateWebhook, d.ID, d.State, d.Attempts, d.NextAttemptAt, d.LastError)
	if err != nil {
		return fmt.Errorf("postgres: update webhook %d: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
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
	case genpipe.WebhookPending, genpipe.WebhookDelivered, genpipe.WebhookAbandoned:
		return true
	}
	return false
}
