package aisim

import (
	"context"
	"image"
	"sync"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/slide"
)

// turns bounds the slide renders that run at once. A render is CPU work
// with a large canvas: more at once than there are CPUs to run them buy
// no throughput and only hold more memory, so a call that finds every
// turn taken waits for one, keeping its slot (callers see the same
// capacity and 429s) and the memory it claimed for the render. A call
// holding a turn never waits for memory, so the two cannot deadlock.
type turns struct {
	ch chan struct{}

	mu sync.Mutex
	st renderStats
}

// renderStats are the render part of MemoryStats.
type renderStats struct {
	Renders      int   `json:"renders"`      // how many may run at once (WithRenders)
	Rendering    int   `json:"rendering"`    // how many run now
	MaxRendering int   `json:"maxRendering"` // the most that ever ran at once; never more than Renders
	RenderWaits  int64 `json:"renderWaits"`  // how many calls waited for a turn
}

func newTurns(n int) *turns {
	return &turns{ch: make(chan struct{}, n), st: renderStats{Renders: n}}
}

// take waits for a turn or until ctx is done.
func (t *turns) take(ctx context.Context) error {
	select {
	case t.ch <- struct{}{}:
	default:
		t.count(func(st *renderStats) { st.RenderWaits++ })
		select {
		case t.ch <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.count(func(st *renderStats) {
		st.Rendering++
		st.MaxRendering = max(st.MaxRendering, st.Rendering)
	})
	return nil
}

func (t *turns) give() {
	t.count(func(st *renderStats) { st.Rendering-- })
	<-t.ch
}

func (t *turns) count(f func(*renderStats)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.st)
}

func (t *turns) stats() renderStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

// render renders the slide in a turn.
func (s *Service) render(ctx context.Context, img image.Image, in genpipe.GenerateInput) (slide.Files, error) {
	if err := s.renders.take(ctx); err != nil {
		return slide.Files{}, err
	}
	defer s.renders.give()
	return slide.Render(img, in.Style, in.Title, in.Description)
}
