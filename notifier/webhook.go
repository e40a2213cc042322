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

// storeTimeout bounds recording an attempt's outcome, which runs even
// after the attempt's own context ended: an outcome not recorded makes the
// delivery go out again once its claim's lease ends.
const storeTimeout = 5 * time.Second

// RunWebhooks delivers due webhooks from the outbox until ctx is done. It
// claims deliveries (see genpipe.WebhookOutbox.ClaimDueWebhooks) only when it
// has a free slot for them, so any number of notifiers may share one status
// store and none sends a delivery another is sending. Once ctx is done it
// claims nothing more, lets the attempts under way finish within the
// shutdown timeout, hands back those that do not, and returns nil.
func (n *Notifier) RunWebhooks(ctx context.Context) error {
	// Attempts outlive ctx by up to the shutdown timeout: a POST cut short
	// may have reached the receiver and would be sent again.
	actx, stopAttempts := afterGrace(ctx, n.cfg.shutdown)
	defer stopAttempts()
	var wg sync.WaitGroup
	defer wg.Wait() // before stopAttempts: deferred calls run last first
	slots := make(chan struct{}, n.cfg.concurrency)
	freed := make(chan struct{}, 1) // an attempt ended: claim again without waiting for the tick
	tick := time.NewTicker(n.cfg.pollInterval)
	defer tick.Stop()
	for {
		if err := n.startDue(ctx, actx, slots, freed, &wg); err != nil && ctx.Err() == nil {
			n.cfg.logger.Error("webhook outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-freed:
		}
	}
}

// startDue claims as many due deliveries as there are free slots and starts
// an attempt for each on actx. Only the RunWebhooks loop takes slots, so the
// free ones cannot shrink before they are taken.
func (n *Notifier) startDue(ctx, actx context.Context, slots, freed chan struct{}, wg *sync.WaitGroup) error {
	free := cap(slots) - len(slots)
	if free == 0 {
		return nil
	}
	due, err := n.outbox.ClaimDueWebhooks(ctx, n.cfg.now(), n.cfg.claimLease, free)
	if err != nil {
		return fmt.Errorf("notifier: claim due webhooks: %w", err)
	}
	for _, d := range due {
		slots <- struct{}{}
		wg.Go(func() {
			n.attempt(actx, d)
			<-slots
			select {
			case freed <- struct{}{}:
			default: // the loop is already told
			}
		})
	}
	return nil
}

// attempt makes one delivery attempt of a claimed delivery and records its
// outcome. An attempt cut short by ctx hands the delivery back instead.
func (n *Notifier) attempt(ctx context.Context, d genpipe.WebhookDelivery) {
	err := n.post(ctx, d)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err != nil && ctx.Err() != nil { // cut short, maybe by the cancellation
		n.handBack(rctx, d)
		return
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
	if err := n.outbox.UpdateWebhook(rctx, d); err != nil {
		n.cfg.logger.Error("record webhook attempt; the delivery goes out again when its claim's lease ends",
			"request", d.RequestID, "delivery", d.ID, "err", err)
	}
}

// handBack makes a delivery whose attempt was cut short due at once, so
// that the next notifier need not wait for the claim's lease to end. The
// attempt does not count: its outcome is unknown.
func (n *Notifier) handBack(ctx context.Context, d genpipe.WebhookDelivery) {
	d.NextAttemptAt = n.cfg.now()
	if err := n.outbox.UpdateWebhook(ctx, d); err != nil {
		n.cfg.logger.Error("hand back webhook; it is due again when its claim's lease ends",
			"request", d.RequestID, "delivery", d.ID, "err", err)
		return
	}
	n.cfg.logger.Info("webhook attempt interrupted by shutdown; handed back", "request", d.RequestID, "delivery", d.ID)
}

// afterGrace returns a context that is canceled grace after ctx is done,
// or when stop is called.
func afterGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopWatching := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(gctx, func() { t.Stop() })
	})
	return gctx, func() {
		stopWatching()
		cancel()
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
	r, err := n.requests.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read request %s: %w", id, err)
	}
	view, err := genpipe.NewRequestView(ctx, r, n.objects, n.cfg.resultTTL)
	if err != nil {
		return nil, err
	}
	return json.Marshal(view)
}
