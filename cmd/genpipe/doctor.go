package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/genpipe/genpipe/doctor"
)

// errTrapsFound makes `genpipe doctor` exit 1, like a linter with findings.
var errTrapsFound = errors.New("traps found")

func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg                      clientConfig
		configFile, topic, group string
		asJSON                   bool
		handlerTime              time.Duration
		capacity, partitions     int
		consumers, inFlight      int
		keyless                  bool
	)
	fs := newFlags("doctor", stderr)
	cfg.common.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: genpipe doctor [flags]

Names the source article's Kafka traps in a client configuration (Java
properties; defaults are the Java client's) and, given -brokers and -topic,
in a live topic and group. Exits 1 when it finds any.

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&configFile, "config", "", "Java client properties file (linger.ms, batch.size, max.poll.records, ...)")
	fs.StringVar(&cfg.Kafka.Brokers, "brokers", "", "inspect a live cluster at these brokers")
	fs.StringVar(&topic, "topic", "", "the topic to inspect (with -brokers)")
	fs.StringVar(&group, "group", "", "the consumer group to inspect (with -brokers)")
	cfg.Kafka.kafkaConnSettings.register(fs)
	def := doctor.JavaDefaults() // the article's workload, on the Java client's defaults
	fs.Duration(&handlerTime, "handler-time", "", def.HandlerTime, "time to process one record (the AI's latency)", positive)
	fs.Int(&capacity, "ai-capacity", "", def.AICapacity, "concurrent calls the AI takes", atLeast(1))
	fs.Int(&partitions, "partitions", "", def.Partitions, "partitions of the topic", atLeast(1))
	fs.Int(&consumers, "consumers", "", def.Consumers, "consumers in the group", atLeast(1))
	fs.Int(&inFlight, "in-flight", "", def.InFlight, "records one consumer processes at once", atLeast(1))
	fs.Bool(&keyless, "keyless", "", def.Keyless, "events are produced without a key")
	fs.BoolVar(&asJSON, "json", false, "print findings as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := doctorSettings(configFile)
	if err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) { // flags given explicitly win over the file
		switch f.Name {
		case "handler-time":
			s.HandlerTime = handlerTime
		case "ai-capacity":
			s.AICapacity = capacity
		case "partitions":
			s.Partitions = partitions
		case "consumers":
			s.Consumers = consumers
		case "in-flight":
			s.InFlight = inFlight
		case "keyless":
			s.Keyless = keyless
		}
	})
	findings := doctor.Diagnose(s)
	if cfg.Kafka.Brokers != "" && topic != "" {
		conn, err := cfg.Kafka.conn()
		if err != nil {
			return err
		}
		live, err := doctor.Inspect(ctx, conn.Brokers(), topic, group, 500, conn.Opts()...)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "live: topic %s has %d partitions (fullest %.1f× the mean; bursts used %.0f%% of them), group %q has %d members and lag %d; %d of %d sampled records have no key\n",
			topic, live.Partitions, live.MaxOverMean(), 100*live.BurstSpread(), group, live.Members, live.Lag, live.Keyless, live.Sampled)
		findings = doctor.DiagnoseLive(s, live)
	}
	printFindings(stdout, findings, asJSON)
	if len(findings) > 0 {
		return errTrapsFound
	}
	return nil
}

func doctorSettings(path string) (doctor.Settings, error) {
	s := doctor.JavaDefaults()
	if path == "" {
		return s, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return s, fmt.Errorf("doctor: %w", err)
	}
	defer f.Close()
	return doctor.ParseProperties(f, s)
}

func printFindings(w io.Writer, findings []doctor.Finding, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"findings": findings})
		return
	}
	if len(findings) == 0 {
		fmt.Fprintln(w, "no traps found")
		return
	}
	for i, f := range findings {
		fmt.Fprintf(w, "%d. [%s] %s\n   why: %s\n   fix: %s\n", i+1, f.Trap, f.Title, f.Detail, f.Fix)
	}
}
