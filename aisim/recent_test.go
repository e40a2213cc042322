package aisim

import (
	"slices"
	"testing"
	"time"
)

// keepAll is the default retention: more than any test here needs.
var keepAll = retention{keep: DefaultRetention, max: DefaultRetentionMax}

// clock is a fake time that moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// runCall runs one call of id through g, ending res.
func runCall(t *testing.T, g *gate, id string, res result) {
	t.Helper()
	slot, _, ok := g.acquire(id, time.Second)
	if !ok {
		t.Fatalf("acquire %s refused", id)
	}
	g.release(slot, id, res)
}

// The gate forgets a request id once it is older than the retention: a
// request repeated after it counts as new, one repeated within it is still
// a duplicate, and the counters count every call.
func TestGateForgetsOldRequests(t *testing.T) {
	clk := newClock()
	g := newGate(2, retention{keep: time.Minute, max: 100})
	g.now = clk.now
	runCall(t, g, "a", succeeded)
	clk.advance(2 * time.Minute)
	runCall(t, g, "b", succeeded)
	runCall(t, g, "a", succeeded) // a was forgotten: not a duplicate
	runCall(t, g, "b", succeeded) // b was not: paid twice
	want := Stats{Calls: 4, UniqueRequests: 3, Succeeded: 4, UniqueSucceeded: 3, MaxConcurrent: 1, Capacity: 2}
	if got := g.stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	if got, want := g.paidTwice(), []Duplicate{{RequestID: "b", Succeeded: 2}}; !slices.Equal(got, want) {
		t.Errorf("paidTwice = %v, want %v", got, want)
	}
	if n := g.seen.len(); n != 2 {
		t.Errorf("seen holds %d request ids, want the 2 within the last minute", n)
	}
	clk.advance(time.Hour)
	if got := g.paidTwice(); got != nil {
		t.Errorf("paidTwice an hour later = %v, want none: forgotten", got)
	}
	if got := len(g.log.calls); got != 3 {
		t.Errorf("the call log holds %d calls, want the 3 of the second minute (it forgets as calls come)", got)
	}
	runCall(t, g, "c", succeeded)
	if got := g.log.calls; len(got) != 1 || got[0].RequestID != "c" || got[0].Seq != 5 {
		t.Errorf("the call log an hour later = %+v, want c's call alone, numbered 5", got)
	}
}

// However many requests a gate serves, it holds at most max of each kind,
// and its counters stay exact.
func TestGateHoldsAtMostMax(t *testing.T) {
	g := newGate(4, retention{keep: time.Hour, max: 3})
	for i := range 1000 {
		id := "r-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		runCall(t, g, id, succeeded)
	}
	want := Stats{Calls: 1000, UniqueRequests: 1000, Succeeded: 1000, UniqueSucceeded: 1000, MaxConcurrent: 1, Capacity: 4}
	if got := g.stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	if s, ok, l := g.seen.len(), g.succeeded.len(), len(g.log.calls); s != 3 || ok != 3 || l != 3 {
		t.Errorf("holds %d request ids, %d succeeded ids and %d calls; want 3 of each", s, ok, l)
	}
	if got := g.log.calls[2].Seq; got != 1000 {
		t.Errorf("the latest call is numbered %d, want 1000", got)
	}
}

// A call dropped from the log while it runs still ends cleanly, and the
// log lists the calls after it.
func TestCallLogDropsRunningCall(t *testing.T) {
	g := newGate(2, retention{keep: time.Hour, max: 1})
	a, _, _ := g.acquire("a", time.Second)
	b, _, _ := g.acquire("b", time.Second) // drops a's call from the log
	g.release(a, "a", succeeded)
	if got := g.log.calls; len(got) != 1 || got[0].RequestID != "b" || got[0].Outcome != "running" {
		t.Fatalf("log %+v, want b's call alone, running", got)
	}
	g.release(b, "b", failed)
	if got := g.log.calls[0].Outcome; got != "failed" {
		t.Errorf("b's call ended %q, want failed", got)
	}
}

// An idempotent answer is replayed within the retention and forgotten
// after it, and at most max are held.
func TestAnswersForget(t *testing.T) {
	clk := newClock()
	a := newAnswers(retention{keep: time.Minute, max: 2})
	a.now = clk.now
	a.put("k1", 1)
	if v, ok := a.get("k1"); !ok || v != 1 {
		t.Errorf("get k1 = %v, %v; want the stored answer", v, ok)
	}
	clk.advance(time.Minute)
	if v, ok := a.get("k1"); ok {
		t.Errorf("get k1 a minute later = %v; want forgotten", v)
	}
	for _, k := range []string{"k2", "k3", "k4"} {
		a.put(k, k)
	}
	if _, ok := a.get("k2"); ok || a.out.len() != 2 {
		t.Errorf("after 3 answers with max 2: k2 kept=%v, %d held; want k2 forgotten, 2 held", ok, a.out.len())
	}
}

func TestRetentionOption(t *testing.T) {
	for _, r := range []retention{{0, 1}, {time.Second, 0}} {
		if _, err := NewCheckService(WithRetention(r.keep, r.max)); err == nil {
			t.Errorf("WithRetention(%v, %d): no error", r.keep, r.max)
		}
	}
}
