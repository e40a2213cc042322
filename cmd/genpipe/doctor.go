package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/genpipe/genpipe/doctor"
)

// errTrapsFound makes `genpipe doctor` exit 1, like a linter with findings.
var errTrapsFound = errors.New("traps found")

func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg                      clientConfig
		configFile, topic, group string
		asJSON                   bool
		s                        = doctor.JavaDefaults() // the article's workload, on the Java client's defaults
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
	fs.Duration(&s.HandlerTime, "handler-time", "", s.HandlerTime, "time to process one record (the AI's latency)", positive)
	fs.Int(&s.AICapacity, "ai-capacity", "", s.AICapacity, "concurrent calls the AI takes", atLeast(1))
	fs.Int(&s.Partitions, "partitions", "", s.Partitions, "partitions of the topic", atLeast(1))
	fs.Int(&s.Consumers, "consumers", "", s.Consumers, "consumers in the group", atLeast(1))
	fs.Int(&s.InFlight, "in-flight", "", s.InFlight, "records one consumer processes at once", atLeast(1))
	fs.Bool(&s.Keyless, "keyless", "", s.Keyless, "events are produced without a key")
	fs.BoolVar(&asJSON, "json", false, "print findings as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if configFile != "" {
		var err error
		if s, err = applyProperties(configFile, s); err != nil {
			return err
		}
		// Flags given explicitly win over the file: each sets its field
		// of s again.
		fs.Visit(func(f *flag.Flag) { _ = f.Value.Set(f.Value.String()) })
	}
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

// applyProperties returns s with the Java client properties of the file at
// path applied.
func applyProperties(path string, s doctor.Settings) (doctor.Settings, error) {
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
