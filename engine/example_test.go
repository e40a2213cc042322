package engine_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/engine"
)

// A check worker: one record per Checking AI call, as many at once as the AI
// takes, split with the group's other workers.
func Example() {
	check := func(ctx context.Context, r *kgo.Record) error {
		// Call the AI here. On a 429 the handler either retries,
		// calling engine.ReportOverload(ctx) each time, or gives up
		// and returns an error wrapping engine.ErrOverloaded (or one
		// that the test of engine.WithOverloadTest accepts).
		return nil
	}
	e, err := engine.New([]string{"127.0.0.1:9092"}, "genpipe-check", []string{"genpipe.requests"}, check,
		engine.WithCapacity(64),
		engine.WithShutdownTimeout(20*time.Second),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := e.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
