package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Genpipe-Signature"

// Sign returns the SignatureHeader value for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header is the valid signature of body; receivers
// use it. The comparison takes constant time.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// RunWebhooks delivers due webhooks from the outbox until ctx is done.
func (n *Notifier) RunWebhooks(ctx context.Context) error {
	tick := time.NewTicker(n.cfg.pollInterval)
	defer tick.Stop()
	for {
		if err := n.deliverDue(ctx); err != nil && ctx.Err() == nil {
			n.cfg.logger.Error("webhook outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// deliverDue sends one batch of due deliveries, a few at a time, and waits
// for them so that none is picked twice.
func (n *Notifier) deliverDue(ctx context.Context) error {
	due, err := n.store.DueWebhooks(ctx, n.cfg.now(), 4*n.cfg.concurrency)
	if err != nil {
		return fmt.Errorf("notifier: due webhooks: %w", err)
	}
	sem := make(chan struct{}, n.cfg.concurrency)
	var wg sync.WaitGroup
	for _, d := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n.attempt(ctx, d)
		})
	}
	wg.Wait()
	return nil
}

// attempt makes one delivery attempt and records its outcome.
func (n *Notifier) attempt(ctx context.Context, d genpipe.WebhookDelivery) {
	err := n.post(ctx, d)
	if ctx.Err() != nil {
		return // shutting down: the delivery stays due for the next run
	}
	d.Attempts++
	now := n.cfg.now()
	switch {
	case err == nil:
		d.State, d.LastError = genpipe.WebhookDelivered, ""
	case now.Sub(d.CreatedAt) >= n.cfg.retryWindow:
		d.State, d.LastError = genpipe.WebhookAbandoned, err.Error()
		n.cfg.logger.Warn("webhook abandoned", "request", d.RequestID, "url", d.URL, "attempts", d.Attempts, "err", err)
	default:
		policy := backoff.Policy{Base: time.Second, Max: n.cfg.maxDelay}
		d.LastError, d.NextAttemptAt = err.Error(), now.Add(policy.Delay(d.Attempts))
		n.cfg.logger.Info("webhook failed, will retry", "request", d.RequestID, "attempt", d.Attempts, "next", d.NextAttemptAt, "err", err)
	}
	if err := n.store.UpdateWebhook(ctx, d); err != nil {
		n.cfg.logger.Error("record webhook attempt", "request", d.RequestID, "err", err)
	}
}

// post sends the request's current status view, signed.
func (n *Notifier) post(ctx context.Context, d genpipe.WebhookDelivery) error {
	body, err := n.payload(ctx, d.RequestID)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "genpipe-webhook/1")
	req.Header.Set(SignatureHeader, Sign(n.secret, body))
	req.Header.Set("X-Genpipe-Delivery", strconv.FormatInt(d.ID, 10))
	resp, err := n.cfg.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook POST: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook POST: receiver answered %s", resp.Status)
	}
	return nil
}

func (n *Notifier) payload(ctx context.Context, id string) ([]byte, error) {
	r, err := n.store.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read request %s: %w", id, err)
	}
	view, err := genpipe.NewRequestView(ctx, r, n.objects, n.cfg.resultTTL)
	if err != nil {
		return nil, err
	}
	return json.Marshal(view)
}
