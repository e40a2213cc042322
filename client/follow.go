package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
)

// Event is one status change of a request, as its event stream tells it.
type Event = genpipe.StreamEvent

// maxEventLine bounds a line of an event stream: an event's data with its
// three presigned links is a few KiB.
const maxEventLine = 1 << 20

// errStreamEnded is a stream that ended before the request did.
var errStreamEnded = errors.New("the event stream ended before the request did")

// Follow calls fn with each status change of request id, oldest first,
// from its event stream, until a terminal status, which it returns. A lost
// stream is reconnected (up to WithReconnects times in a row, waiting as
// the server asks or DefaultReconnectDelay), with Last-Event-ID when the
// server numbers its events; a status already passed to fn is not passed
// again either way. An error of fn, a *Problem that retrying cannot fix
// (401, 404) and the end of ctx stop it.
func (c *Client) Follow(ctx context.Context, id string, fn func(Event) error) (Event, error) {
	f := &follower{c: c, id: id, fn: fn}
	for failures := 0; ; {
		progressed, err := f.connect(ctx)
		if f.final != nil {
			return *f.final, nil
		}
		var p *Problem
		var cb callbackError
		switch {
		case ctx.Err() != nil:
			return Event{}, ctx.Err()
		case errors.As(err, &p) && !p.Temporary():
			return Event{}, err
		case errors.As(err, &cb):
			return Event{}, cb.err
		}
		if progressed {
			failures = 0
		}
		failures++
		if failures > c.reconnects {
			return Event{}, fmt.Errorf("follow request %s: %w", id, err)
		}
		wait := c.delay.Delay(failures)
		if f.retry > 0 {
			wait = f.retry
		}
		if errors.As(err, &p) && p.RetryAfter > 0 {
			wait = p.RetryAfter
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return Event{}, err
		}
	}
}

// callbackError is fn's error, which stops Follow as it is.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

type follower struct {
	c      *Client
	id     string
	fn     func(Event) error
	lastID string        // the last event id the server sent
	rank   int           // the rank of the last status passed to fn
	retry  time.Duration // the server's reconnection delay (SSE retry field)
	final  *Event
}

// connect reads one connection's stream; progressed reports whether it
// brought a status not seen before.
func (f *follower) connect(ctx context.Context) (progressed bool, err error) {
	req, err := f.c.newRequest(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(f.id)+"/events", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if f.lastID != "" {
		req.Header.Set("Last-Event-ID", f.lastID)
	}
	resp, err := f.c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, problemOf(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 16<<10), maxEventLine)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // the end of an event
			if data.Len() > 0 {
				fresh, err := f.dispatch(data.String())
				progressed = progressed || fresh
				if err != nil || f.final != nil {
					return progressed, err
				}
			}
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		case "id":
			f.lastID = value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				f.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := sc.Err(); err != nil {
		return progressed, fmt.Errorf("read the event stream: %w", err)
	}
	return progressed, errStreamEnded
}

// dispatch passes an event's data to fn unless its status was passed
// already; it reports whether it was new.
func (f *follower) dispatch(data string) (bool, error) {
	var ev Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return false, fmt.Errorf("event %q: %w", data, err)
	}
	if ev.Status.Rank() <= f.rank {
		return false, nil
	}
	f.rank = ev.Status.Rank()
	if f.fn != nil {
		if err := f.fn(ev); err != nil {
			return true, callbackError{err}
		}
	}
	if ev.Status.Terminal() {
		f.final = &ev
	}
	return true, nil
}
