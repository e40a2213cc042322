package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/httpjson"
	"github.com/genpipe/genpipe/netguard"
)

// The headers genpipe sent before Standard Webhooks, kept while receivers
// move on (see WithLegacySignature). LegacySignatureHeader signs only the
// body, so a captured message verifies forever: receivers should verify
// HeaderSignature instead.
const (
	LegacySignatureHeader = "X-Genpipe-Signature" // "sha256=" and the hex HMAC-SHA256 of the body, keyed with the secret as given
	LegacyDeliveryHeader  = "X-Genpipe-Delivery"  // the delivery's number in the outbox
)

// legacySign returns the LegacySignatureHeader value of body, keyed as
// before Standard Webhooks: with the secret's bytes, whatever its form.
func legacySign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// messageID is the webhook-id of a delivery: one per request and status,
// as the outbox holds one delivery per request and status, so every
// attempt of a delivery carries the same id, and no other delivery's id
// collides with it (request ids are UUIDs). It holds no "." (see the
// signature scheme).
func messageID(d genpipe.WebhookDelivery) string {
	return "msg_" + d.RequestID + "_" + string(d.Status)
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
	start := time.Now()
	err := n.post(ctx, d)
	took := time.Since(start)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err != nil && ctx.Err() != nil { // cut short, maybe by the cancellation
		n.handBack(rctx, d)
		return
	}
	d.Attempts++
	now := n.cfg.now()
	var f *failure
	errors.As(err, &f)
	switch {
	case err == nil:
		d.State, d.LastError = genpipe.WebhookDelivered, ""
	case f != nil && f.final:
		d.State, d.LastError = genpipe.WebhookFailed, err.Error()
		n.cfg.logger.Warn("webhook refused for good, not retried", "request", d.RequestID, "url", d.URL, "err", err)
	case now.Sub(d.CreatedAt) >= n.cfg.retryWindow:
		d.State, d.LastError = genpipe.WebhookAbandoned, err.Error()
		n.cfg.logger.Warn("webhook abandoned", "request", d.RequestID, "url", d.URL, "attempts", d.Attempts, "err", err)
	default:
		d.LastError, d.NextAttemptAt = err.Error(), now.Add(n.retryDelay(d.Attempts, f))
		n.cfg.logger.Info("webhook failed, will retry", "request", d.RequestID, "attempt", d.Attempts, "next", d.NextAttemptAt, "err", err)
	}
	n.cfg.onAttempt(d.State, took)
	if err := n.outbox.UpdateWebhook(rctx, d); err != nil {
		n.cfg.logger.Error("record webhook attempt; the delivery goes out again when its claim's lease ends",
			"request", d.RequestID, "delivery", d.ID, "err", err)
	}
}

// retryDelay is the wait after a delivery's attempts-th failure f (nil
// for one the receiver did not answer): the backoff, or longer when the
// receiver asked for longer with Retry-After, though never longer than
// the retry window.
func (n *Notifier) retryDelay(attempts int, f *failure) time.Duration {
	d := backoff.Policy{Base: time.Second, Max: n.cfg.maxDelay}.Delay(attempts)
	if f != nil && f.retryAfter > d {
		d = min(f.retryAfter, n.cfg.retryWindow)
	}
	return d
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

// failure is a failed attempt whose cause the notifier can judge: an
// answer of the receiver, or a refusal of the address.
type failure struct {
	msg        string
	final      bool          // retrying cannot fix it: the delivery ends failed
	retryAfter time.Duration // the receiver's Retry-After, 0 if none
}

func (f *failure) Error() string { return f.msg }

// post sends the request's current status view, signed at this attempt.
func (n *Notifier) post(ctx context.Context, d genpipe.WebhookDelivery) error {
	body, err := n.payload(ctx, d.RequestID)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return &failure{msg: fmt.Sprintf("webhook request: %v", err), final: true}
	}
	n.sign(req.Header, d, body)
	resp, err := n.cfg.client.Do(req)
	if netguard.Refused(err) {
		// A name that resolves to an internal address now: retrying dials it again.
		return &failure{msg: fmt.Sprintf("webhook POST: %v", err), final: true}
	}
	if err != nil {
		return fmt.Errorf("webhook POST: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return answerFailure(resp, n.cfg.now())
}

// sign sets the headers of a webhook: content type, the Standard Webhooks
// id, timestamp and signature of this attempt, and the legacy ones unless
// turned off.
func (n *Notifier) sign(h http.Header, d genpipe.WebhookDelivery, body []byte) {
	id, at := messageID(d), n.cfg.now()
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "genpipe-webhook/1")
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, Sign(n.key, id, at, body))
	if n.cfg.legacySignature {
		h.Set(LegacySignatureHeader, legacySign(n.legacyKey, body))
		h.Set(LegacyDeliveryHeader, strconv.FormatInt(d.ID, 10))
	}
}

// answerFailure judges the receiver's answer, as Standard Webhooks
// suggests: 2xx delivers (nil); a redirect is not followed, and like a 4xx
// other than 408 and 429 it is the receiver's configuration, which the
// same URL will meet again, so it is final; 408, 429, 5xx and anything
// else are retried, after the Retry-After the receiver asked for, if any.
func answerFailure(resp *http.Response, now time.Time) error {
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return nil
	}
	// The standard text, not the receiver's: the request's view shows it.
	f := &failure{msg: strings.TrimSpace(fmt.Sprintf("webhook POST: receiver answered %d %s", code, http.StatusText(code)))}
	switch {
	case code >= 300 && code <= 399:
		f.final = true
		f.msg += "; redirects are not followed: give the URL it redirects to"
	case code >= 400 && code <= 499 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		f.final = true
		f.msg += "; not retried"
	default:
		f.retryAfter, _ = httpjson.RetryAfter(resp.Header, now)
	}
	return f
}

func (n *Notifier) payload(ctx context.Context, id string) ([]byte, error) {
	r, err := n.requests.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read request %s: %w", id, err)
	}
	r.Webhook = nil // the message is the request's status, not its own
	view, err := genpipe.NewRequestView(ctx, r, n.objects, n.cfg.resultTTL)
	if err != nil {
		return nil, err
	}
	return json.Marshal(view)
}
