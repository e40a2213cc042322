package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/slide"
)

// aisimConfig is the configuration of `genpipe aisim`: a simulated AI
// service.
type aisimConfig struct {
	common
	pprofSettings
	Model    string
	Addr     string
	Latency  time.Duration // -latency 0 takes the model's default; runAISim uses it as it is
	Capacity int
	FailRate float64
	BusyRate float64
	Abort    bool // stop a call its client aborts (DELETE /v1/calls/{key}); up sets it

	// Memory limits of the images; 0 (as `up` leaves them) takes the
	// package's defaults.
	MaxDecodedBytes int64
	MemoryBudget    int64
}

func (c *aisimConfig) register(f *flags) {
	c.common.register(f)
	c.pprofSettings.register(f)
	f.String(&c.Model, "model", "GENPIPE_AI_MODEL", "", "the AI to simulate: check or generate", oneOf("check", "generate"))
	f.String(&c.Addr, "addr", "GENPIPE_ADDR", "127.0.0.1:0", "listen address", nonEmpty)
	f.Duration(&c.Latency, "latency", "GENPIPE_AI_LATENCY", 0,
		fmt.Sprintf("time per call (default %v for check, %v for generate)", aisim.DefaultCheckLatency, aisim.DefaultGenerateLatency),
		atLeast(time.Duration(0)))
	f.Int(&c.Capacity, "capacity", "GENPIPE_AI_CAPACITY", aisim.DefaultCapacity, "concurrent calls; more get 429", atLeast(1))
	f.Float(&c.FailRate, "fail-rate", "GENPIPE_AI_FAIL_RATE", 0,
		"probability (0 to 1) of answering a call 500 on arrival, before it takes a slot: for fault tests", between(0.0, 1.0))
	f.Bool(&c.Abort, "abort", "GENPIPE_AI_ABORT", true,
		"stop a call when its client aborts it (DELETE /v1/calls/{Idempotency-Key}: its request was canceled), freeing the slot at once; "+
			"false simulates a service that cannot: its calls run to their end")
	f.Float(&c.BusyRate, "busy-rate", "GENPIPE_AI_BUSY_RATE", 0,
		"probability (0 to 1) of answering a call 429 with Retry-After on arrival: for fault tests", between(0.0, 1.0))
	f.Int64(&c.MaxDecodedBytes, "max-decoded-bytes", "GENPIPE_AI_MAX_DECODED_BYTES", aisim.DefaultMaxDecodedBytes,
		"the most memory decoding one image may take, judged from its header; a larger image is refused with the reason", atLeast(int64(1<<20)))
	f.Int64(&c.MemoryBudget, "memory-budget", "GENPIPE_AI_MEMORY_BUDGET", aisim.DefaultMemoryBudget,
		"bytes all calls may hold at once for images (decoded images, slide renders); a call waits for its share, keeping its slot. "+
			"Must hold -max-decoded-bytes plus 1 MiB, and a render (90 MiB) for generate", atLeast(int64(2<<20)))
	f.Check(func() error {
		if c.FailRate+c.BusyRate > 1 {
			return fmt.Errorf("-fail-rate %g and -busy-rate %g add up to more than 1", c.FailRate, c.BusyRate)
		}
		return nil
	})
}

func (c *aisimConfig) part() string { return "aisim-" + c.Model }

func cmdAISim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runProfiled(ctx, "aisim", args, stderr, func(ctx context.Context, cfg aisimConfig, log *slog.Logger) error {
		return listenAISim(ctx, cfg, stdout, log)
	})
}

// listenAISim serves `genpipe aisim` on its -addr.
func listenAISim(ctx context.Context, cfg aisimConfig, stdout io.Writer, log *slog.Logger) error {
	if cfg.Latency == 0 {
		cfg.Latency = aisim.DefaultCheckLatency
		if cfg.Model == "generate" {
			cfg.Latency = aisim.DefaultGenerateLatency
		}
	}
	ln, url, err := listen(cfg.Addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "genpipe aisim %s serving %s (latency %s, capacity %d, memory budget %d MiB, fail rate %g, busy rate %g)\n",
		cfg.Model, url, cfg.Latency, cfg.Capacity, cfg.MemoryBudget>>20, cfg.FailRate, cfg.BusyRate)
	if cfg.Model == "generate" {
		warnMissingFonts(log, slide.MissingFonts())
	}
	return runAISim(ctx, cfg, ln, log)
}

// runAISim serves a simulated AI service on ln until ctx is done.
func runAISim(ctx context.Context, cfg aisimConfig, ln net.Listener, log *slog.Logger) error {
	opts := []aisim.Option{aisim.WithLatency(cfg.Latency), aisim.WithCapacity(cfg.Capacity),
		aisim.WithFaultRate(cfg.FailRate), aisim.WithBusyRate(cfg.BusyRate), aisim.WithLogger(log), aisim.WithAbort(cfg.Abort)}
	if cfg.MaxDecodedBytes != 0 {
		opts = append(opts, aisim.WithMaxDecodedBytes(cfg.MaxDecodedBytes))
	}
	if cfg.MemoryBudget != 0 {
		opts = append(opts, aisim.WithMemoryBudget(cfg.MemoryBudget))
	}
	svc, err := aisim.New(cfg.Model, opts...)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	return serveHTTP(ctx, ln, svc.Handler(), log, aiServer)
}
