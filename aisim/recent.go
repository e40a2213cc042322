package aisim

import "time"

// retention is how long, and for how many, a service remembers what it
// keeps per request or call (WithRetention).
type retention struct {
	keep time.Duration
	max  int
}

// recent is a map that forgets: an entry is dropped once it is older than
// keep, or when more than max are held, the oldest first. Entries are
// added in time order, so the oldest is always at the front of order and
// forgetting costs nothing per lookup. It is not safe for concurrent use.
type recent[V any] struct {
	r     retention
	m     map[string]V
	order []stamped // the keys in m, oldest first
}

type stamped struct {
	key string
	at  time.Time
}

func newRecent[V any](r retention) *recent[V] {
	return &recent[V]{r: r, m: map[string]V{}}
}

func (c *recent[V]) get(key string, now time.Time) (V, bool) {
	c.forget(now)
	v, ok := c.m[key]
	return v, ok
}

// put sets key's value; a new key is stamped now, a known one keeps its
// stamp (it is forgotten as old as it first came).
func (c *recent[V]) put(key string, v V, now time.Time) {
	if _, ok := c.m[key]; !ok {
		c.order = append(c.order, stamped{key, now})
	}
	c.m[key] = v
	c.forget(now)
}

func (c *recent[V]) len() int { return len(c.m) }

// forget drops the entries over the count and those older than keep.
func (c *recent[V]) forget(now time.Time) {
	n := 0
	for n < len(c.order) && (len(c.order)-n > c.r.max || now.Sub(c.order[n].at) >= c.r.keep) {
		delete(c.m, c.order[n].key)
		n++
	}
	if n > 0 {
		clear(c.order[:n]) // let the keys go
		c.order = c.order[n:]
	}
}

// all calls f for each entry, in no order.
func (c *recent[V]) all(now time.Time, f func(string, V)) {
	c.forget(now)
	for k, v := range c.m {
		f(k, v)
	}
}
