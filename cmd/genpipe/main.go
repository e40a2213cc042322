// Command genpipe runs the genpipe slide pipeline: the whole system in one
// process on embedded defaults (genpipe up), or each part as its own
// process against real Kafka, S3 and a database.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
)

const usage = `genpipe — an asynchronous generative-AI slide pipeline on Kafka

Usage:
  genpipe up                              the whole system in one process, embedded defaults
  genpipe broker                          an embedded Kafka-protocol broker (kfake)
  genpipe objectstore                     an embedded S3 server (versitygw, SigV4 enforced)
  genpipe aisim --model check|generate    a simulated AI service
  genpipe api                             the HTTP API and web page
  genpipe worker --stage check|generate   a stage worker
  genpipe notifier                        status store writer and webhook sender
  genpipe doctor                          name the article's Kafka traps in a configuration
  genpipe loadtest                        measure naive, article and genpipe profiles on one workload
  genpipe dlq list|replay                 show or replay the records set aside in the dead-letter topic
  genpipe usage                           print the paid AI calls and AI-seconds by tenant, stage and day
  genpipe bench intake                    measure POST /v1/requests against a produce-only server
  genpipe submit IMAGE -style ID -description TEXT [-wait]
                                          submit a slide request to a running API; -wait follows it and downloads the slide

Run 'genpipe COMMAND -h' for a command's flags. Every flag also reads the
GENPIPE_* environment variable named in its help.
`

func main() {
	// The first SIGINT or SIGTERM shuts down gracefully, a second exits at once.
	ctx, stop := onSignals(context.Background(), slog.New(slog.NewTextHandler(os.Stderr, nil)), os.Exit)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil // stopped by a signal while starting: as clean a stop as any
	}
	if err != nil {
		if errors.Is(err, errTrapsFound) {
			os.Exit(1)
		}
		if exit := (*exitError)(nil); errors.As(err, &exit) { // genpipe submit's statuses
			fmt.Fprintln(os.Stderr, "genpipe:", err)
			os.Exit(exit.code)
		}
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "genpipe:", err)
		}
		os.Exit(2)
	}
}

// run dispatches to a subcommand. Output meant for people (URLs, tables)
// goes to stdout, logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

// command runs one subcommand with its arguments.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// commands maps each subcommand's name to its function. The configuration
// reference (reference.go) walks this table, so a command added here shows
// up in docs/configuration.md; config-reference itself is for maintainers
// and stays out of the usage text.
func commands() map[string]command {
	return map[string]command{
		"up":               cmdUp,
		"broker":           cmdBroker,
		"objectstore":      cmdObjectStore,
		"aisim":            cmdAISim,
		"api":              cmdAPI,
		"worker":           cmdWorker,
		"notifier":         cmdNotifier,
		"doctor":           cmdDoctor,
		"dlq":              cmdDLQ,
		"usage":            cmdUsage,
		"submit":           cmdSubmit,
		"loadtest":         cmdLoadtest,
		"bench":            cmdBench,
		"config-reference": cmdConfigReference,
	}
}
