package main

import (
	"context"
	"io"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/notifier"
)

// notifierCapacity is how many status events the notifier records at once
// (ordered per request): its own concurrency, not an AI's.
const notifierCapacity = 16

// notifierConfig is the configuration of `genpipe notifier`: the status
// store writer and webhook sender.
type notifierConfig struct {
	servicePart
	WebhookSecret        string
	AllowPrivateWebhooks bool
}

func (c *notifierConfig) register(f *flags) {
	c.servicePart.register(f, false, true)
	f.Secret(&c.WebhookSecret, "webhook-secret", "GENPIPE_WEBHOOK_SECRET", "HMAC-SHA256 key that signs webhook bodies")
	f.Check(func() error {
		return requiredFlags("webhook-secret", c.WebhookSecret)
	})
	f.Bool(&c.AllowPrivateWebhooks, "allow-private-webhooks", "GENPIPE_ALLOW_PRIVATE_WEBHOOKS", false,
		"let webhook POSTs connect to loopback, private, link-local and other internal addresses (checked on the address dialed)")
}

func (c *notifierConfig) part() string { return "notifier" }

func cmdNotifier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAlone(ctx, "notifier", args, stderr, runNotifier)
}

// runNotifier records status events and sends webhooks until ctx is done.
func runNotifier(ctx context.Context, cfg notifierConfig, obs *observability, log *slog.Logger) error {
	// Its producer writes only dead letters (poison on the results topic).
	d, err := openDeps(ctx, cfg.backends, obs, "notifier", log)
	if err != nil {
		return err
	}
	defer d.close()
	n, err := notifier.New(d.store, d.store, d.objects, []byte(cfg.WebhookSecret), notifier.WithLogger(log),
		notifier.WithEndToEndHook(obs.endToEndHook), notifier.WithPrivateWebhooks(cfg.AllowPrivateWebhooks),
		notifier.WithShutdownTimeout(cfg.ShutdownTimeout))
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.RunWebhooks(ctx) })
	// Ordered by key: one request's changes apply in topic order, so its
	// history has every step, while different requests apply concurrently.
	g.Go(func() error {
		c := consumer{stage: "notifier", group: groupNotifier, topic: genpipe.DefaultTopics().Results, event: genpipe.EventStatus,
			capacity: notifierCapacity, handle: n.Handle}
		return consume(ctx, d, c, cfg.common, log, engine.WithOrderByKey())
	})
	return g.Wait()
}
