package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/genpipe/genpipe/loadtest"
)

func cmdLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg                       clientConfig
		scenario, profiles, shape string
		requests, burst, workers  int
		duration, drain           time.Duration
		rate, scale               float64
		jsonFile, outDir          string
		life                      lifecycleFlags
	)
	fs := newFlags("loadtest", stderr)
	cfg.common.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: genpipe loadtest [flags]

Runs one workload through the pipeline's Kafka part under each profile in
turn (naive: the article's Java defaults; article: its fixes; genpipe: the
stage engine) against latency-only AI services, and prints what happened.
Every duration is multiplied by -time-scale; figures are reported unscaled.

The multi-tenant scenarios (noisy-neighbor, priority, weights) run on the
article's system with tenants' streams instead of a shape, by default on
the genpipe profile only, and report each tenant's wait (produce → the
generative AI call starting), throughput and share, with PASS/FAIL lines
against their targets. -requests sets their backlog (default 5000).

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&scenario, "scenario", "article", "article (64 partitions, AI capacity 64), few-partitions (8 partitions, capacity 64), "+
		"a multi-tenant workload on article's system: noisy-neighbor, priority or weights, "+
		"or through genpipe up's HTTP API: lifecycle (cancels, deadlines, then the step), step (predicted waits from 0.5× to 3× the capacity) "+
		"or overhead (what genpipe adds to the AIs' time, seen over SSE; run it with -time-scale 1)")
	fs.IntVar(&life.capacity, "ai-capacity", lifecycleCapacity, "lifecycle and step: the simulated AIs' capacity")
	fs.Float64Var(&life.load, "load", 0, fmt.Sprintf("lifecycle and overhead: the load, × the AI's capacity (0: %g for lifecycle, %g for overhead)",
		loadtest.DefaultLifecycleLoad, loadtest.DefaultOverheadLoad))
	fs.DurationVar(&life.stepDuration, "step-duration", loadtest.DefaultStepDuration, "step: how long each load lasts (unscaled)")
	fs.StringVar(&profiles, "profiles", strings.Join(loadtest.Profiles, ","), "profiles to run, one after another, comma-separated")
	fs.StringVar(&shape, "shape", loadtest.ShapeBurst, "workload shape: burst, steady or ramp")
	fs.IntVar(&requests, "requests", 0, fmt.Sprintf("requests to send (0: -duration × rate, or %d); for a multi-tenant scenario, its backlog (0: %d)",
		loadtest.DefaultRequests, loadtest.DefaultBacklog))
	fs.DurationVar(&duration, "duration", 0, "send for this long (unscaled), when -requests is 0")
	fs.Float64Var(&rate, "rate", 0, fmt.Sprintf("mean requests per second, unscaled (0: %.2f × the scenario's maxRps)", loadtest.DefaultOverload))
	fs.IntVar(&burst, "burst", loadtest.DefaultBurstSize, "requests per burst (burst shape)")
	fs.IntVar(&workers, "workers", 1, "genpipe profile: engines (group members with their own clients) per stage, sharing the AI's capacity")
	fs.Float64Var(&scale, "time-scale", loadtest.DefaultTimeScale, "multiplies every duration (AI latencies, poll interval, timeouts, workload)")
	fs.DurationVar(&drain, "drain-timeout", loadtest.DefaultDrainTimeout, "after the last request, wait this long (unscaled) for the rest; what does not complete is lost")
	fs.StringVar(&cfg.Kafka.Brokers, "brokers", "", "Kafka brokers to use (comma-separated); empty starts an embedded broker")
	cfg.Kafka.kafkaConnSettings.register(fs)
	fs.StringVar(&jsonFile, "json", "", "write the report as JSON to this file")
	fs.StringVar(&outDir, "out", "", "write charts and report.html to this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if scenario == loadtest.LifecycleScenario || scenario == loadtest.StepScenario || scenario == loadtest.OverheadScenario {
		life.scenario, life.scale, life.drain, life.jsonFile, life.outDir = scenario, scale, drain, jsonFile, outDir
		life.duration = duration // 0: the lab's default
		return runLifecycleLab(ctx, life, stdout, stderr)
	}
	workload := loadtest.Workload{Shape: shape, Requests: requests, Duration: duration, Rate: rate, BurstSize: burst}
	sc, ok := loadtest.Scenarios[scenario]
	if slices.Contains(loadtest.Workloads, scenario) {
		if err := shapeFlagsUnset(fs.FlagSet, scenario); err != nil {
			return err
		}
		sc, ok = loadtest.Scenarios["article"], true
		w, err := loadtest.TenantWorkload(scenario, requests, sc)
		if err != nil {
			return err
		}
		workload = w
		if !flagSet(fs.FlagSet, "profiles") {
			profiles = loadtest.ProfileGenpipe
		}
	}
	if !ok {
		return fmt.Errorf("unknown -scenario %q (article, few-partitions, %s)", scenario, strings.Join(loadtest.Workloads, ", "))
	}
	log, err := cfg.logger(stderr, "loadtest")
	if err != nil {
		return err
	}
	var names []string
	for _, p := range strings.Split(profiles, ",") {
		if p = strings.TrimSpace(p); p != "" {
			names = append(names, p)
		}
	}
	kafkaOpts, err := cfg.Kafka.options()
	if err != nil {
		return err
	}
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Scenario:     sc,
		Profiles:     names,
		Workload:     workload,
		TimeScale:    scale,
		Workers:      workers,
		Brokers:      splitList(cfg.Kafka.Brokers),
		Kafka:        kafkaOpts,
		DrainTimeout: drain,
		Logger:       log,
		Progress: func(p loadtest.Progress) {
			fmt.Fprintf(stderr, "%-8s produced %d/%d  completed %d/%d  %.1f rps  (%s unscaled)\n",
				p.Profile, p.Produced, p.Requests, p.Completed, p.Requests, p.Rps, p.Elapsed.Round(time.Second))
		},
	})
	if rep == nil || len(rep.Results) == 0 {
		return err
	}
	// What was measured is shown even when the run failed or was stopped:
	// the figures say how far it got, and the error why it ended.
	return errors.Join(err, writeLoadtest(rep, stdout, jsonFile, outDir))
}

// shapeFlagsUnset fails when a flag that shapes a single-tenant workload
// was given with a multi-tenant scenario, whose streams have shapes of
// their own.
func shapeFlagsUnset(fs *flag.FlagSet, scenario string) error {
	for _, name := range []string{"shape", "duration", "rate", "burst"} {
		if flagSet(fs, name) {
			return fmt.Errorf("-%s does not apply to -scenario %s: its tenants' streams have shapes of their own (-requests sets its backlog)", name, scenario)
		}
	}
	return nil
}

// flagSet reports whether the command line set flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// writeLoadtest writes rep as JSON to jsonFile and as charts and HTML into
// outDir (each when set), and its table to stdout.
func writeLoadtest(rep *loadtest.Report, stdout io.Writer, jsonFile, outDir string) error {
	if err := writeJSONFile(jsonFile, rep); err != nil {
		return err
	}
	if outDir != "" {
		if err := writeLoadtestReport(rep, outDir); err != nil {
			return err
		}
	}
	if rep.Workload != "" {
		fmt.Fprintf(stdout, "scenario %s on %s, time scale %g (figures unscaled)\n", rep.Workload, rep.Scenario, rep.TimeScale)
	} else {
		fmt.Fprintf(stdout, "scenario %s, shape %s, time scale %g (figures unscaled)\n", rep.Scenario, rep.Shape, rep.TimeScale)
	}
	return loadtest.WriteTable(stdout, *rep)
}

// writeLoadtestReport writes the charts and report.html into dir.
func writeLoadtestReport(rep *loadtest.Report, dir string) (err error) {
	charts, err := loadtest.WriteCharts(dir, *rep)
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return loadtest.WriteHTML(f, *rep, charts)
}

// writeJSONFile writes v as indented JSON to file; nothing when file is "".
func writeJSONFile(file string, v any) error {
	if file == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}
