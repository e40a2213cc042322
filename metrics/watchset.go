package metrics

import "sync"

// watchSet holds what a collector reads at every scrape: watchers add
// themselves and remove themselves when they stop (a stage, a dispatcher).
type watchSet[T comparable] struct {
	mu sync.Mutex
	m  map[T]struct{}
}

// add adds w until the returned func is called.
func (s *watchSet[T]) add(w T) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[T]struct{}{}
	}
	s.m[w] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.m, w)
	}
}

// all returns what is watched now, so a scrape reads it without the lock.
func (s *watchSet[T]) all() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := make([]T, 0, len(s.m))
	for w := range s.m {
		ws = append(ws, w)
	}
	return ws
}
