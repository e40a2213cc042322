package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/genpipe/genpipe"
)

// streamWriteTimeout bounds each write of an event stream. A stream
// outlives any server's write timeout, which counts from the start of the
// request, so it sets a deadline of its own before every write instead: a
// client that stops reading is cut once its socket buffers are full and a
// write has waited this long. The heartbeat writes at least every 15 s.
const streamWriteTimeout = 30 * time.Second

// streamEvents sends one SSE event per status change, oldest first, and
// ends after a terminal status. The status store's history comes first,
// then what the hub has that the store does not have yet (a change the
// notifier has not written), then each live change the moment the hub
// gets it; the store is polled too, so a change the hub missed still
// arrives. Each event's id is its status's rank: a client that reconnects
// with Last-Event-ID (as EventSource does, and the page) gets only the
// changes after it, so a stream that the server ended (genpipe's servers
// end streams after a maximum lifetime) resumes where it stopped.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	req, err := s.findRequest(r)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if _, ok := w.(http.Flusher); !ok {
		s.problem(w, r, fmt.Errorf("streaming unsupported by the response writer"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	if r.Method == http.MethodHead {
		// The headers only: net/http drops a HEAD's body, so the stream's
		// writes would never fail, and it would hold the connection (and
		// the next request on it) until the request ended.
		w.WriteHeader(http.StatusOK)
		return
	}
	watch := s.hub.Watch(req.ID, req.CreatedAt)
	defer watch.Cancel()
	w.WriteHeader(http.StatusOK)
	st := &stream{s: s, w: w, rc: http.NewResponseController(w), id: req.ID, share: req.Share.Normalized(), rank: resumedRank(r),
		ahead: watch.Known, trusted: watch.Complete}
	if err := st.write(""); err != nil { // the headers, at once
		return
	}
	st.run(r.Context(), watch.Live)
}

// resumedRank is the rank of the last event a reconnecting client got, from
// its Last-Event-ID; 0 for a new stream.
func resumedRank(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get("Last-Event-ID"))
	if err != nil || n < 0 {
		return 0
	}
	return min(n, genpipe.StatusDone.Rank())
}

type stream struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	id    string
	share genpipe.Share // the request's, in every event
	rank  int           // the rank of the last status the client got
	// ahead has the hub's changes not sent yet, oldest first. When the hub
	// vouches for the request (trusted: it saw every change of it), they
	// follow the store's history at once; otherwise only when the store
	// lags behind them for lagTolerance.
	ahead      []genpipe.StatusChange
	aheadSince time.Time
	trusted    bool
}

// write sends text and flushes it, within streamWriteTimeout.
func (st *stream) write(text string) error {
	if err := st.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := io.WriteString(st.w, text); err != nil {
		return err
	}
	return st.rc.Flush()
}

// lagTolerance is how long a stream the hub cannot vouch for waits for the
// status store to record a live change before it sends the change itself
// (the store's writer is down); behindPoll is how often it rereads the store
// meanwhile: the notifier records a change within milliseconds of the hub
// getting it, and the client waits for whatever the poll adds. Only such
// streams with a change ahead of the store poll this fast, for as long as
// the store lags.
const lagTolerance, behindPoll = 3 * time.Second, 10 * time.Millisecond

// run sends the stored history, then follows the request: each live change
// is sent as it comes, after the store is read once more for the changes
// before it (the store, not the topic, decides a cancel, so a stored
// canceled ends the stream before a racing done). The store is also polled
// every pollEvery, for a change the hub missed.
func (st *stream) run(ctx context.Context, live <-chan genpipe.StatusChange) {
	heartbeat := time.NewTicker(st.s.cfg.heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTimer(st.s.cfg.pollEvery)
	defer poll.Stop()
	st.aheadSince = time.Now()
	for done := st.advance(ctx); !done; {
		select {
		case <-ctx.Done():
			return
		case c := <-live:
			if len(st.ahead) == 0 {
				st.aheadSince = time.Now()
			}
			st.ahead = append(st.ahead, c)
		case <-poll.C:
		case <-heartbeat.C:
			if st.write(": keep-alive\n\n") != nil {
				return // the client is gone, or stopped reading
			}
			continue
		}
		done = st.advance(ctx)
		next := st.s.cfg.pollEvery
		if len(st.ahead) > 0 && !st.trusted {
			next = behindPoll
		}
		poll.Reset(next)
	}
}

// advance sends the store's changes not yet sent, then the hub's ahead of
// them when it may; it reports whether the stream is over.
func (st *stream) advance(ctx context.Context) bool {
	if st.catchUp(ctx) {
		return true
	}
	st.ahead = slices.DeleteFunc(st.ahead, func(c genpipe.StatusChange) bool { return c.Status.Rank() <= st.rank })
	if len(st.ahead) == 0 {
		return false
	}
	if !st.trusted {
		if time.Since(st.aheadSince) <= lagTolerance {
			return false
		}
		st.s.cfg.logger.Warn("status store lags behind the results topic", "request", st.id, "status", st.ahead[len(st.ahead)-1].Status)
	}
	// By rank: a change the hub forgot and saw again may come after a later one.
	slices.SortStableFunc(st.ahead, func(a, b genpipe.StatusChange) int { return a.Status.Rank() - b.Status.Rank() })
	for _, c := range st.ahead {
		if st.send(ctx, c) {
			return true
		}
	}
	st.ahead = slices.DeleteFunc(st.ahead, func(c genpipe.StatusChange) bool { return c.Status.Rank() <= st.rank })
	return false
}

// catchUp sends the stored changes not yet sent; it reports whether the
// stream is over.
func (st *stream) catchUp(ctx context.Context) bool {
	history, err := st.s.store.History(ctx, st.id)
	if err != nil {
		st.s.cfg.logger.Warn("SSE history", "request", st.id, "err", err)
		return ctx.Err() != nil
	}
	for _, c := range history {
		if c.Status == genpipe.StatusDone && c.Result == nil {
			c.Result = st.storedResult(ctx)
		}
		if st.send(ctx, c) {
			return true
		}
	}
	// A client that resumed after the final status has it already.
	last := history[len(history)-1].Status
	return last.Terminal() && last.Rank() <= st.rank
}

// storedResult returns the result keys of a done request; history rows
// carry only the status.
func (st *stream) storedResult(ctx context.Context) *genpipe.Result {
	req, err := st.s.store.Request(ctx, st.id)
	if err != nil {
		return nil
	}
	return req.Result
}

// send writes c unless an equal or later status went before; it reports
// whether the stream is over (terminal status, or the client is gone).
func (st *stream) send(ctx context.Context, c genpipe.StatusChange) bool {
	if c.Status.Rank() <= st.rank || (c.Status == genpipe.StatusDone && c.Result == nil) {
		return false // already sent, or done without its links yet: a later poll has them
	}
	ev := genpipe.StreamEvent{RequestID: c.RequestID, Status: c.Status, Tenant: st.share.Tenant, Priority: st.share.Priority,
		Error: c.Error, At: c.At.UTC()}
	if c.Result != nil {
		result, err := genpipe.NewResultView(ctx, *c.Result, st.s.objects, st.s.cfg.resultTTL)
		if err != nil {
			st.s.cfg.logger.Warn("SSE result links", "request", st.id, "err", err)
			return false // a later poll retries
		}
		ev.Result = &result
	}
	data, _ := json.Marshal(ev)
	if err := st.write(fmt.Sprintf("id: %d\nevent: status\ndata: %s\n\n", c.Status.Rank(), data)); err != nil {
		return true
	}
	st.rank = c.Status.Rank()
	return c.Status.Terminal()
}
