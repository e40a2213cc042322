package aiclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/genpipe/genpipe"
)

// Aborting a call. When the context of a call ends with the cause
// genpipe.ErrCanceled (its request was canceled), the client first tells
// the service, DELETE /v1/calls/{Idempotency-Key}, and waits for its
// answer (at most AbortTimeout), then drops the HTTP request. A service
// that aborts stops the work and frees the call's slot before it answers
// 200; one that does not (404, 501, no route) lets the call run out, and
// its answer is never read. A call without an idempotency key, or whose
// context ends for another reason, is only dropped: the service sees the
// client go away.

// AbortTimeout bounds how long a client waits for the service's answer
// to an abort before it drops the call anyway.
const AbortTimeout = 2 * time.Second

// abortable returns a context for the HTTP request of a call under ctx:
// it ends when ctx does, after the abort is told when ctx's cause is
// genpipe.ErrCanceled. stop releases it.
func (c *client) abortable(ctx context.Context, key string) (context.Context, func()) {
	httpCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if dl, ok := ctx.Deadline(); ok {
		var cancelDL context.CancelFunc
		httpCtx, cancelDL = context.WithDeadline(httpCtx, dl)
		prev := cancel
		cancel = func() { cancelDL(); prev() }
	}
	stop := context.AfterFunc(ctx, func() {
		if key != "" && errors.Is(context.Cause(ctx), genpipe.ErrCanceled) {
			c.abort(context.WithoutCancel(ctx), key)
		}
		cancel()
	})
	return httpCtx, func() { stop(); cancel() }
}

// abort tells the service to stop the call with key and waits for its
// answer. Whatever it answers, the caller drops the call next.
func (c *client) abort(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(ctx, AbortTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"/v1/calls/"+url.PathEscape(key), nil)
	if err != nil {
		return
	}
	resp, err := c.cfg.client.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
}
