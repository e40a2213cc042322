package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/kafka"
)

const dlqUsage = `Usage: genpipe dlq list [flags]
       genpipe dlq replay [flags] (-all | -id P:O ... | -request ID ...)

list prints every record of the dead-letter topic: poison records (not a
decodable event of this build) and requests whose AI stage failed for good,
with where each came from and why.

replay writes dead letters back to the topic they came from. A request
event is replayed with its replay count raised, so its failed stage is
tried again (a replay of the same dead letter twice does not pay twice);
a poison record goes back as it was, for a build that reads it.

`

func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(stderr, dlqUsage)
		return errors.New("dlq: want list or replay")
	}
	var (
		cfg           clientConfig
		asJSON, all   bool
		dryRun        bool
		ids, requests listFlag
	)
	fs := newFlags("dlq "+args[0], stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dlqUsage); fs.PrintDefaults() }
	cfg.common.register(fs)
	cfg.Kafka.register(fs)
	if args[0] == "list" {
		fs.BoolVar(&asJSON, "json", false, "print JSON lines instead of a table")
	} else {
		fs.BoolVar(&all, "all", false, "replay every dead letter")
		fs.Var(&ids, "id", "replay the dead letter with this id (partition:offset, as list prints it); repeatable")
		fs.Var(&requests, "request", "replay the dead letters of this request id; repeatable")
		fs.BoolVar(&dryRun, "dry-run", false, "print what would be replayed, replay nothing")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := cfg.Kafka.conn()
	if err != nil {
		return err
	}
	letters, err := conn.ReadDeadLetters(ctx, genpipe.DefaultTopics().DeadLetters)
	if err != nil {
		return err
	}
	if args[0] == "list" {
		return printDeadLetters(stdout, letters, asJSON)
	}
	if !all && len(ids) == 0 && len(requests) == 0 {
		return errors.New("dlq replay: say which: -all, -id or -request")
	}
	var chosen []kafka.StoredDeadLetter
	for _, d := range letters {
		if all || slices.Contains(ids, d.ID) || slices.Contains(requests, string(d.Key)) {
			chosen = append(chosen, d)
		}
	}
	if len(chosen) == 0 {
		return errors.New("dlq replay: no dead letter matches")
	}
	return replayDeadLetters(ctx, conn, chosen, dryRun, stdout)
}

func replayDeadLetters(ctx context.Context, conn *kafka.Conn, letters []kafka.StoredDeadLetter, dryRun bool, stdout io.Writer) error {
	if dryRun {
		for _, d := range letters {
			fmt.Fprintf(stdout, "would replay %s to %s (key %s)\n", d.ID, d.Topic, d.Key)
		}
		return nil
	}
	p, err := conn.NewProducer()
	if err != nil {
		return err
	}
	defer p.Close()
	for _, d := range letters {
		if err := kafka.ReplayDeadLetter(ctx, p, d); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %s to %s (key %s)\n", d.ID, d.Topic, d.Key)
	}
	return nil
}

func printDeadLetters(w io.Writer, letters []kafka.StoredDeadLetter, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, d := range letters {
			if err := enc.Encode(map[string]any{
				"id": d.ID, "at": d.At, "stage": d.Stage, "topic": d.Topic, "partition": d.Partition,
				"offset": d.Offset, "key": string(d.Key), "attempts": d.Attempts, "reason": d.Reason,
				"value": string(d.Value), "valueBytes": max(d.ValueBytes, len(d.Value)), "valueCut": d.ValueBytes > 0,
			}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tSTAGE\tFROM\tKEY\tATTEMPTS\tREASON")
	for _, d := range letters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%d/%d\t%s\t%d\t%s\n", d.ID, d.At.Format(time.RFC3339), d.Stage,
			d.Topic, d.Partition, d.Offset, d.Key, d.Attempts, d.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d dead letter(s)\n", len(letters))
	return nil
}

// listFlag is a repeatable string flag; commas also separate values.
type listFlag []string

var _ flag.Value = (*listFlag)(nil)

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}
