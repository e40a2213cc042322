package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

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
	LegacySignature      bool
	ResultTTL            time.Duration
}

func (c *notifierConfig) register(f *flags) {
	c.servicePart.register(f, false, true)
	f.Secret(&c.WebhookSecret, "webhook-secret", "GENPIPE_WEBHOOK_SECRET",
		"the secret that signs webhooks (Standard Webhooks): whsec_ and 24 to 64 random bytes in base64, as up generates; "+
			"any other value is used as the HMAC-SHA256 key byte for byte, as before")
	f.Check(func() error {
		if err := requiredFlags("webhook-secret", c.WebhookSecret); err != nil {
			return err
		}
		if _, err := notifier.ParseSecret(c.WebhookSecret); err != nil {
			return fmt.Errorf("-webhook-secret: %w", err)
		}
		return nil
	})
	f.Bool(&c.AllowPrivateWebhooks, "allow-private-webhooks", "GENPIPE_ALLOW_PRIVATE_WEBHOOKS", false,
		"let webhook POSTs connect to loopback, private, link-local and other internal addresses (checked on the address dialed)")
	f.Bool(&c.LegacySignature, "webhook-legacy-signature", "GENPIPE_WEBHOOK_LEGACY_SIGNATURE", notifier.DefaultLegacySignature,
		"also send X-Genpipe-Signature (HMAC of the body alone) and X-Genpipe-Delivery, for receivers not yet verifying "+
			"webhook-signature; turn off once they do, as a signature of the body alone verifies a replayed webhook")
	registerResultTTL(f, &c.ResultTTL)
}

// options turns the settings into the notifier's options, logger and
// hooks aside.
func (c notifierConfig) options() []notifier.Option {
	return []notifier.Option{notifier.WithPrivateWebhooks(c.AllowPrivateWebhooks),
		notifier.WithLegacySignature(c.LegacySignature), notifier.WithResultTTL(c.ResultTTL),
		notifier.WithShutdownTimeout(c.ShutdownTimeout)}
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
	n, err := notifier.New(d.store, d.store, d.objects, cfg.WebhookSecret,
		append(cfg.options(), notifier.WithLogger(log), notifier.WithEndToEndHook(obs.endToEndHook), obs.webhookHook())...)
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
