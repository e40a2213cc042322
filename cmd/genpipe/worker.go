package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/scheduler"
	"github.com/genpipe/genpipe/tenants"
	"github.com/genpipe/genpipe/worker"
)

// Where `genpipe worker` finds the AI services by default: the ports a
// person running `genpipe aisim` on one machine would give them.
const (
	defaultCheckAIURL    = "http://127.0.0.1:8081"
	defaultGenerateAIURL = "http://127.0.0.1:8082"
)

// workerConfig is the configuration of `genpipe worker`: one AI stage.
type workerConfig struct {
	servicePart // the stage claims live in the status database
	Stage       string
	stageSettings
}

// stageSettings say how the AI stages call the AIs and share them; up
// runs both stages with the same settings.
type stageSettings struct {
	CheckAIURL       string
	GenerateAIURL    string
	CheckCapacity    int
	GenerateCapacity int
	// ClaimLease is how long a worker's claim on a request's AI call holds
	// unrenewed; AIAttempts how often a call is tried before the request
	// fails; SessionTimeout how soon the group notices a dead worker.
	ClaimLease     time.Duration
	AIAttempts     int
	SessionTimeout time.Duration
	// PriorityAging is how long a task waits at its priority before it
	// competes one level up.
	PriorityAging time.Duration
	// CancelPoll is how often the process asks whether its running AI
	// calls' requests were canceled.
	CancelPoll time.Duration
	// TenantsFile holds the tenants' budgets, checked before each AI
	// call; "" for none.
	TenantsFile string
}

// defaultStageSettings are the flags' defaults, for up, which has no
// flags for the settings it does not change.
func defaultStageSettings() stageSettings {
	return stageSettings{CheckCapacity: scheduler.DefaultCapacity, GenerateCapacity: scheduler.DefaultCapacity,
		ClaimLease: worker.DefaultLease, AIAttempts: backoff.Default.Attempts, SessionTimeout: engine.DefaultSessionTimeout,
		PriorityAging: scheduler.DefaultAging, CancelPoll: worker.DefaultCancelPoll}
}

func (c *workerConfig) register(f *flags) {
	c.servicePart.register(f, false, false)
	def := defaultStageSettings()
	f.String(&c.Stage, "stage", "GENPIPE_STAGE", "", "the stage to run: check or generate", oneOf("check", "generate"))
	f.String(&c.CheckAIURL, "check-ai-url", "GENPIPE_CHECK_AI_URL", defaultCheckAIURL, "Checking AI base URL", httpURL)
	f.String(&c.GenerateAIURL, "generate-ai-url", "GENPIPE_GENERATE_AI_URL", defaultGenerateAIURL, "Generative AI base URL", httpURL)
	f.Int(&c.CheckCapacity, "check-capacity", "GENPIPE_CHECK_CAPACITY", def.CheckCapacity,
		"concurrent calls the Checking AI takes: the check stage's running tasks over every worker process never exceed it", atLeast(1))
	f.Int(&c.GenerateCapacity, "generate-capacity", "GENPIPE_GENERATE_CAPACITY", def.GenerateCapacity,
		"concurrent calls the Generative AI takes: the generate stage's running tasks over every worker process never exceed it", atLeast(1))
	f.Duration(&c.PriorityAging, "priority-aging", "GENPIPE_PRIORITY_AGING", def.PriorityAging,
		"how long a waiting task keeps its priority before it competes one level up (low, then normal): low waits at most twice this before it competes as high",
		positive)
	registerCancelPoll(f, &c.CancelPoll)
	f.Duration(&c.ClaimLease, "claim-lease", "GENPIPE_CLAIM_LEASE", def.ClaimLease,
		"how long a worker's claim on a request's AI call holds unrenewed: a dead worker's requests wait this long before another takes them over",
		atLeast(10*time.Millisecond))
	f.Int(&c.AIAttempts, "ai-attempts", "GENPIPE_AI_ATTEMPTS", def.AIAttempts,
		"AI call attempts (429, 5xx, timeouts retried with exponential backoff and jitter) before a request fails and goes to the dead-letter topic",
		atLeast(1))
	f.String(&c.TenantsFile, "tenants", "GENPIPE_TENANTS", "",
		"tenants file (as the API's -tenants): the tenants' daily budgets, checked before each AI call (a call over a spent budget "+
			"is not made and its request fails); re-read on SIGHUP (a bad file keeps the budgets in force)")
	f.Check(func() error {
		if c.TenantsFile == "" {
			return nil
		}
		_, err := tenants.Load(c.TenantsFile)
		return err
	})
	f.Duration(&c.SessionTimeout, "session-timeout", "GENPIPE_SESSION_TIMEOUT", def.SessionTimeout,
		"how long the consumer group waits for a dead worker's heartbeat before giving its partitions to the others (within the broker's group.min/max.session.timeout.ms)",
		positive)
}

func (c *workerConfig) part() string { return c.Stage + "-worker" }

func cmdWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAlone(ctx, "worker", args, stderr, runWorker)
}

// runWorker runs one AI stage until ctx is done.
func runWorker(ctx context.Context, cfg workerConfig, obs *observability, log *slog.Logger) error {
	d, err := openDeps(ctx, cfg.backends, obs, cfg.Stage+"-worker", log)
	if err != nil {
		return err
	}
	defer d.close()
	retry := backoff.Default
	retry.Attempts = cfg.AIAttempts
	obs.metrics.InitAIStage(cfg.Stage)
	watcher, stopWatcher, err := watchCancels(ctx, d, cfg.CancelPoll, log)
	if err != nil {
		return err
	}
	defer stopWatcher()
	stageOpts := []worker.Option{worker.WithLogger(log), worker.WithOverloadReport(scheduler.ReportOverload),
		worker.WithLease(cfg.ClaimLease), worker.WithRetry(retry), worker.WithRetryHook(obs.retryHook),
		worker.WithCancelWatcher(watcher), worker.WithExpiredHook(obs.metrics.RequestExpired),
		worker.WithLedger(d.store), worker.WithCallHook(obs.callHook, obs.budgetHook)}
	if cfg.TenantsFile != "" {
		budgets, stop, err := watchBudgets(cfg.TenantsFile, log)
		if err != nil {
			return err
		}
		defer stop()
		stageOpts = append(stageOpts, worker.WithBudgets(budgets))
	}
	aiOpts := []aiclient.Option{aiclient.WithTracerProvider(obs.tracing.TracerProvider())}
	topics := genpipe.DefaultTopics()
	c := consumer{stage: cfg.Stage}
	var capacity int
	switch cfg.Stage {
	case "check":
		stage, err := worker.NewCheck(aiclient.NewChecker(cfg.CheckAIURL, aiOpts...), d.objects, d.producer, d.store, topics, stageOpts...)
		if err != nil {
			return err
		}
		c.handle, c.topic, c.event, c.group, capacity = stage.Handle, topics.Requests, genpipe.EventSubmitted, groupCheck, cfg.CheckCapacity
	case "generate":
		stage, err := worker.NewGenerate(aiclient.NewGenerator(cfg.GenerateAIURL, aiOpts...), d.objects, d.producer, d.store, topics, stageOpts...)
		if err != nil {
			return err
		}
		c.handle, c.topic, c.event, c.group, capacity = stage.Handle, topics.Checked, genpipe.EventChecked, groupGenerate, cfg.GenerateCapacity
	default:
		return fmt.Errorf("unknown stage %q: want check or generate", cfg.Stage)
	}
	// A task given up mid-call leaves its AI call running to its end (see
	// package worker); the process waits for it before it exits.
	err = schedule(ctx, d, c, cfg.common, log,
		[]scheduler.Option{scheduler.WithCapacity(capacity), scheduler.WithLease(cfg.ClaimLease),
			scheduler.WithAging(cfg.PriorityAging), scheduler.WithAbandonWait(abandonWait),
			scheduler.WithExpiredHook(reportExpired(d, obs, log))},
		engine.WithSessionTimeout(cfg.SessionTimeout))
	return sessionTimeoutHint(err)
}

// abandonWait is how long a worker, at exit, waits for AI calls of tasks
// it gave up on: a call under way runs for up to the AI client's timeout,
// then its outcome is recorded.
const abandonWait = aiclient.DefaultTimeout + 5*time.Second

// sessionTimeoutHint names the setting to change when the brokers refuse the
// session timeout (the engine's error says their bounds); other errors pass
// unchanged.
func sessionTimeoutHint(err error) error {
	var ste *engine.SessionTimeoutError
	if errors.As(err, &ste) {
		return fmt.Errorf("-session-timeout (GENPIPE_SESSION_TIMEOUT): %w", err)
	}
	return err
}
