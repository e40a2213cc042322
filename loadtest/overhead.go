package loadtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/genpipe/genpipe/client"
)

// Defaults of the overhead scenario.
const (
	DefaultOverheadLoad = 0.47 // × the AI's capacity: busy, without a queue
	// DefaultOverheadDuration is long enough for a p99 to be more than the
	// slowest few requests: 6 minutes at the lab's capacity send 450 (2
	// minutes sent 150, whose p99 is the second-slowest).
	DefaultOverheadDuration = 6 * time.Minute // unscaled
	DefaultOverheadP99      = 25 * time.Millisecond
)

// OverheadResult is what the overhead scenario measured, in real
// milliseconds. A request's overhead is the time from its POST being sent
// to its done event being read from its stream, less the time its AI calls
// took as the AI services recorded them; the four parts add up to it.
type OverheadResult struct {
	Load     float64 `json:"load"` // × the capacity
	Requests int     `json:"requests"`
	Measured int     `json:"measured"` // ended done, one call per stage
	// Others counts requests left out, by why: another final status, a
	// stream error, a retried call.
	Others   map[string]int `json:"others,omitempty"`
	Overhead Spread         `json:"overheadMs"`
	Intake   Spread         `json:"intakeMs"`   // POST sent → 202 read
	ToCheck  Spread         `json:"toCheckMs"`  // 202 read → the checking call starts
	Between  Spread         `json:"betweenMs"`  // the checking call ends → the generative call starts
	ToClient Spread         `json:"toClientMs"` // the generative call ends → done read from the stream
	// ToClient's two halves: the worker's records of the call until it
	// stamps the done event (ToDone), and the event through Kafka, the
	// API's feed and the stream to the client (Delivery).
	ToDone   Spread `json:"toDoneMs"`
	Delivery Spread `json:"deliveryMs"`
	AIMs     Spread `json:"aiMs"` // the AI calls' own time
	// First is the overhead of a request sent, and followed to its end,
	// before the others: the first request after the system starts pays
	// for what starting leaves to it (connections, statements prepared,
	// the code's pages read in), which is not the overhead at a load. It is
	// in none of the figures above; 0 when it did not end done.
	First   float64  `json:"firstMs"`
	Targets []Target `json:"targets"`
}

// Spread is a distribution's median, p99 and maximum.
type Spread struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func spreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	return Spread{P50: percentileOf(xs, 50), P99: percentileOf(xs, 99), Max: percentileOf(xs, 100)}
}

// followed is one request of the overhead scenario, as its client saw it.
type followed struct {
	id             string
	sent, accepted time.Time
	doneAt         time.Time // when its terminal event was read
	stamped        time.Time // the terminal event's own time (its at)
	final          string
	err            error
}

// overhead runs the overhead scenario: requests at cfg.OverheadLoad × the
// capacity, each followed over its event stream from the moment the 202
// is read.
func (l *lab) overhead(ctx context.Context) (*OverheadResult, error) {
	cfg := l.cfg
	capacity := cfg.System.capacity()
	n := max(1, int(cfg.OverheadDuration.Seconds()*capacity*cfg.OverheadLoad))
	rate := capacity * cfg.OverheadLoad / cfg.TimeScale
	all := make([]*followed, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	finished := 0
	progress := l.progressEvery(func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("overhead: %d/%d requests followed to their end", finished, n)
	})
	defer progress()
	// A stream lasts as long as its request: no client timeout, the drain
	// bounds it.
	streamCtx, cancel := context.WithTimeout(ctx, l.real(cfg.OverheadDuration+cfg.DrainTimeout))
	defer cancel()
	first := l.follow(streamCtx)
	pace(streamCtx, n, rate, &wg, func(i int) {
		all[i] = l.follow(streamCtx)
		mu.Lock()
		finished++
		mu.Unlock()
	})
	wg.Wait()
	calls, err := l.calls(context.WithoutCancel(ctx), false)
	if err != nil {
		return nil, err
	}
	return judgeOverhead(cfg.OverheadLoad, first, all, calls), nil
}

// follow submits one request and follows its event stream to the end,
// as the API's users do (the client package).
func (l *lab) follow(ctx context.Context) *followed {
	f := &followed{sent: time.Now()}
	a, err := l.api.Submit(ctx, client.Submission{ObjectID: l.objectID, Style: "minimal", Description: "overhead lab"})
	f.accepted = time.Now()
	if err != nil {
		f.err = err
		return f
	}
	f.id = a.ID
	final, err := l.api.Follow(ctx, f.id, func(ev client.Event) error {
		if ev.Status.Terminal() {
			f.doneAt, f.stamped = time.Now(), ev.At // when the client read it, and when it happened
		}
		return nil
	})
	f.final, f.err = string(final.Status), err
	return f
}

// judgeOverhead measures each request that ended done with one call per
// stage against the AIs' records of its calls, and first, the request sent
// before them, on its own.
func judgeOverhead(load float64, first *followed, all []*followed, calls map[string][]Call) *OverheadResult {
	r := &OverheadResult{Load: load, Requests: len(all), Others: map[string]int{}}
	if p, why := measureFollowed(first, calls); why == "" {
		r.First = p.overhead
	}
	var overhead, intake, toCheck, between, toClient, toDone, delivery, ai []float64
	for _, f := range all {
		p, why := measureFollowed(f, calls)
		if why != "" {
			r.Others[why]++
			continue
		}
		r.Measured++
		overhead, intake, toCheck = append(overhead, p.overhead), append(intake, p.intake), append(toCheck, p.toCheck)
		between, toClient, toDone = append(between, p.between), append(toClient, p.toClient), append(toDone, p.toDone)
		delivery, ai = append(delivery, p.delivery), append(ai, p.ai)
	}
	r.Overhead, r.Intake, r.ToCheck, r.Between, r.ToClient, r.ToDone, r.Delivery, r.AIMs = spreadOf(overhead), spreadOf(intake),
		spreadOf(toCheck), spreadOf(between), spreadOf(toClient), spreadOf(toDone), spreadOf(delivery), spreadOf(ai)
	want := ms(DefaultOverheadP99)
	r.Targets = []Target{{
		Name: fmt.Sprintf("client-seen overhead over the AIs' time at %g× the capacity, p99", load),
		Got:  fmt.Sprintf("%.1f ms over %d requests", r.Overhead.P99, r.Measured),
		Want: fmt.Sprintf("≤ %.0f ms", want),
		Pass: r.Measured > 0 && r.Overhead.P99 <= want,
	}}
	return r
}

// followedParts is one request's overhead and its parts, in ms (see
// OverheadResult).
type followedParts struct {
	overhead, intake, toCheck, between, toClient, toDone, delivery, ai float64
}

// measureFollowed returns f's parts, or why it is left out: it did not end
// done, or did not with one call a stage.
func measureFollowed(f *followed, calls map[string][]Call) (followedParts, string) {
	switch {
	case f == nil || f.err != nil:
		return followedParts{}, "error"
	case f.final != "done":
		return followedParts{}, f.final
	}
	cs := calls[f.id]
	if len(cs) != 2 || cs[0].Stage != "check" || cs[1].Stage != "generate" {
		return followedParts{}, "more than one call a stage"
	}
	check, gen := cs[0], cs[1]
	aiTime := check.End.Sub(check.Start) + gen.End.Sub(gen.Start)
	return followedParts{overhead: ms(f.doneAt.Sub(f.sent) - aiTime), intake: ms(f.accepted.Sub(f.sent)),
		toCheck: ms(check.Start.Sub(f.accepted)), between: ms(gen.Start.Sub(check.End)), toClient: ms(f.doneAt.Sub(gen.End)),
		toDone: ms(f.stamped.Sub(gen.End)), delivery: ms(f.doneAt.Sub(f.stamped)), ai: ms(aiTime)}, ""
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// writeOverhead writes the overhead scenario's figures to b.
func writeOverhead(b *strings.Builder, o *OverheadResult) {
	fmt.Fprintf(b, "\noverhead at %g× the capacity: %d requests, %d measured", o.Load, o.Requests, o.Measured)
	if len(o.Others) > 0 {
		fmt.Fprintf(b, " (left out: %s)", joinCounts(o.Others))
	}
	b.WriteString("\n")
	rows := [][]string{{"part (real ms)", "p50", "p99", "max"}}
	for _, p := range []struct {
		name string
		s    Spread
	}{
		{"overhead (client-seen − AI)", o.Overhead}, {"POST → 202", o.Intake}, {"202 → checking call", o.ToCheck},
		{"checking → generative call", o.Between}, {"generative call → done read", o.ToClient},
		{"  call → done stamped (worker)", o.ToDone}, {"  done stamped → read (delivery)", o.Delivery}, {"the AIs' own time", o.AIMs},
	} {
		rows = append(rows, []string{p.name, fmt.Sprintf("%.1f", p.s.P50), fmt.Sprintf("%.1f", p.s.P99), fmt.Sprintf("%.1f", p.s.Max)})
	}
	writeRows(b, rows)
	if o.First > 0 {
		fmt.Fprintf(b, "the first request, sent before these and not in them: overhead %.1f ms\n", o.First)
	}
}
