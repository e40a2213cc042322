package aisim

import (
	"context"
	"testing"
)

// A call that finds every turn taken waits, counted, and gives up when its
// context ends, taking no turn.
func TestTurnsWait(t *testing.T) {
	tu := newTurns(1)
	if err := tu.take(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tu.take(ctx); err == nil {
		t.Fatal("take with every turn taken and a canceled context: no error")
	}
	if st := tu.stats(); st != (renderStats{Renders: 1, Rendering: 1, MaxRendering: 1, RenderWaits: 1}) {
		t.Errorf("stats %+v", st)
	}
	tu.give()
	if err := tu.take(ctx); err != nil {
		t.Errorf("take with a free turn: %v", err)
	}
}
