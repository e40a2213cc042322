package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
)

type tailConfig struct {
	from time.Time
	log  *slog.Logger
}

// TailOption configures Tail.
type TailOption func(*tailConfig)

// WithTailFrom starts Tail at the first record of each partition stamped at
// or after t, overriding the default of the moment Tail is called. Record
// timestamps come from the producers' clocks: a little before now (say, a
// second) makes up for clock skew between machines, at the cost of a few
// records that were already there.
func WithTailFrom(t time.Time) TailOption { return func(c *tailConfig) { c.from = t } }

// WithTailLogger sends fetch errors and franz-go's logs to l, overriding the
// default slog.Default().
func WithTailLogger(l *slog.Logger) TailOption { return func(c *tailConfig) { c.log = l } }

// Tail reads every record of topic stamped from the moment it is called (see
// WithTailFrom), on every partition, without a consumer group, and calls fn
// for each, one at a time, in order within a partition. It is how every API
// process sees every status event for its SSE streams, whatever the
// notifier's group does. fn must be quick: it holds up the records behind it.
//
// Starting from a timestamp rather than from "the end" means a record
// published after Tail was called is never missed while Tail looks its start
// up. It may deliver a few records published just before (those that landed
// while it looked). Tail reads the partitions the topic has when it starts:
// genpipe never adds partitions to an existing topic (see EnsureTopics). If
// the topic does not exist yet, Tail waits for it.
//
// Tail returns nil when ctx is done; fetch errors are logged and retried,
// except that it returns an error at once when the cluster refuses the
// connection settings (credentials, certificates) while it looks up where
// to start.
func (c *Conn) Tail(ctx context.Context, topic string, fn func(*kgo.Record), opts ...TailOption) error {
	cfg := tailConfig{from: time.Now(), log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	start, err := c.tailStart(ctx, topic, cfg)
	if err != nil || start == nil {
		return err
	}
	cl, err := kgo.NewClient(append(c.Opts(),
		kgo.DisableClientMetrics(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.MaxDecompressBatchBytes(genpipe.MaxBatchBytes),
		kgo.WithLogger(kgoLogger{cfg.log}),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: tail %s: %w", topic, err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		failed := false
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			failed = true
			if big := (*kgo.ErrDecompressTooLarge)(nil); errors.As(err, &big) {
				// Not read, nor waited for: what tails a topic follows it
				// as it goes, and the batch is no event of genpipe's.
				cfg.log.Warn("kafka: tail: skipping a batch too large to read", "topic", t, "partition", p, "offset", big.Offset, "next", big.NextOffset)
				cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{t: {p: {Epoch: big.Epoch, Offset: big.NextOffset}}})
				return
			}
			cfg.log.Warn("kafka: tail: fetch error, retrying", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(fn)
		if failed && fetches.NumRecords() == 0 {
			_ = backoff.Sleep(ctx, 250*time.Millisecond)
		}
	}
}

// tailStart returns the offset of each partition where Tail starts: the first
// record stamped at or after cfg.from, or, if there is none, the end of the
// partition as it was before that lookup. franz-go's own AfterMilli start
// offset looks the end up after the timestamp, so a record that lands between
// the two lookups is skipped; listing the end first closes that gap. It
// returns nil, nil if ctx is done first.
func (c *Conn) tailStart(ctx context.Context, topic string, cfg tailConfig) (map[int32]kgo.Offset, error) {
	const retryEvery = 100 * time.Millisecond
	// A short MetadataMinAge, or franz-go answers from a cache that still
	// says the topic is missing for 5s.
	cl, err := kgo.NewClient(append(c.Opts(), kgo.MetadataMinAge(retryEvery))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: tail %s: %w", topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var start map[int32]kgo.Offset
	err = backoff.Retry(ctx, backoff.Constant(retryEvery), func() (err error) {
		start, err = listTailStart(ctx, adm, topic, cfg.from)
		return err
	}, backoff.RetryIf(func(err error) bool { return !isConnConfigError(err) }), backoff.OnRetry(func(attempt int, err error) {
		if attempt == 1 {
			cfg.log.Warn("kafka: tail: cannot find where to start yet, retrying", "topic", topic, "err", err)
		}
	}))
	switch {
	case err == nil:
		return start, nil
	case isConnConfigError(err):
		return nil, c.fail("tail "+topic, err)
	}
	return nil, nil // ctx is done
}

func listTailStart(ctx context.Context, adm *kadm.Client, topic string, from time.Time) (map[int32]kgo.Offset, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, err
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
	if err == nil {
		err = byTime.Error()
	}
	if err != nil {
		return nil, err
	}
	start := make(map[int32]kgo.Offset)
	ends.Each(func(end kadm.ListedOffset) {
		at := end.Offset
		if o, ok := byTime.Lookup(topic, end.Partition); ok && o.Offset >= 0 && o.Offset < at {
			at = o.Offset
		}
		start[end.Partition] = kgo.NewOffset().At(at)
	})
	if len(start) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	return start, nil
}
