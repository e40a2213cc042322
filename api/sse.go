package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
)

// Hub fans live status changes out to the SSE streams of this process. It
// is fed from the results topic, so every API process sees every change.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan genpipe.StatusChange]struct{}
	// observers see every change (see WithEstimateObserver).
	observers []func(genpipe.StatusChange)
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string]map[chan genpipe.StatusChange]struct{}{}} }

// Publish hands c to the streams watching its request. It never blocks: a
// stream that is behind misses the live event and catches up from the
// status store on its next poll.
func (h *Hub) Publish(c genpipe.StatusChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, observe := range h.observers {
		observe(c)
	}
	for ch := range h.subs[c.RequestID] {
		select {
		case ch <- c:
		default:
		}
	}
}

// observe calls f with every change published from now on.
func (h *Hub) observe(f func(genpipe.StatusChange)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observers = append(h.observers, f)
}

// Subscribe returns the live changes of request id and a cancel func.
func (h *Hub) Subscribe(id string) (<-chan genpipe.StatusChange, func()) {
	ch := make(chan genpipe.StatusChange, 8)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan genpipe.StatusChange]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
	}
}

// statusEvent is the data of one SSE event.
type statusEvent struct {
	ID       string              `json:"id"`
	Status   genpipe.Status      `json:"status"`
	Tenant   string              `json:"tenant"`
	Priority genpipe.Priority    `json:"priority"`
	Result   *genpipe.ResultView `json:"result,omitempty"`
	Error    string              `json:"error,omitempty"`
	At       time.Time           `json:"at"`
}

// streamWriteTimeout bounds each write of an event stream. A stream
// outlives any server's write timeout, which counts from the start of the
// request, so it sets a deadline of its own before every write instead: a
// client that stops reading is cut once its socket buffers are full and a
// write has waited this long. The heartbeat writes at least every 15 s.
const streamWriteTimeout = 30 * time.Second

// streamEvents sends one SSE event per status change, oldest first, and
// ends after a terminal status. Live changes come from the hub; the status
// store is read at the start and then polled, so a change the hub missed
// still arrives. Each event's id is its status's rank: a client that
// reconnects with Last-Event-ID (as EventSource does, and the page) gets
// only the changes after it, so a stream that the server ended (genpipe's
// servers end streams after a maximum lifetime) resumes where it stopped.
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
	live, cancel := s.hub.Subscribe(req.ID)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	st := &stream{s: s, w: w, rc: http.NewResponseController(w), id: req.ID, share: req.Share.Normalized(), rank: resumedRank(r)}
	if err := st.write(""); err != nil { // the headers, at once
		return
	}
	st.run(r.Context(), live)
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

// run sends the stored history, then follows the request. A live event is
// a wake-up: the stream rereads the status store, which recorded every
// change in topic order, so a client never sees a step skipped. Only when
// the store lags behind a live event for lagTolerance (its writer is down)
// is the live event sent directly.
func (st *stream) run(ctx context.Context, live <-chan genpipe.StatusChange) {
	const behindPoll, lagTolerance = 50 * time.Millisecond, 3 * time.Second
	heartbeat := time.NewTicker(st.s.cfg.heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTimer(st.s.cfg.pollEvery)
	defer poll.Stop()
	var ahead *genpipe.StatusChange // the newest live change not yet sent
	var aheadSince time.Time
	for done := st.catchUp(ctx); !done; {
		select {
		case <-ctx.Done():
			return
		case c := <-live:
			if c.Status.Rank() > st.rank && (ahead == nil || c.Status.Rank() > ahead.Status.Rank()) {
				ahead, aheadSince = &c, time.Now()
			}
		case <-poll.C:
		case <-heartbeat.C:
			if st.write(": keep-alive\n\n") != nil {
				return // the client is gone, or stopped reading
			}
			continue
		}
		done = st.catchUp(ctx)
		if ahead != nil && ahead.Status.Rank() <= st.rank {
			ahead = nil
		}
		if !done && ahead != nil && time.Since(aheadSince) > lagTolerance {
			st.s.cfg.logger.Warn("status store lags behind the results topic", "request", st.id, "status", ahead.Status)
			done, ahead = st.send(ctx, *ahead), nil
		}
		next := st.s.cfg.pollEvery
		if ahead != nil {
			next = behindPoll
		}
		poll.Reset(next)
	}
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
	ev := statusEvent{ID: c.RequestID, Status: c.Status, Tenant: st.share.Tenant, Priority: st.share.Priority,
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
