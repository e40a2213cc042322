package doctor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Live is what a running cluster shows about a topic and its group.
type Live struct {
	Topic        string
	Partitions   int
	Members      int     // consumers in the group now
	Sampled      int     // records read to look at their keys
	Keyless      int     // of them, records without a key
	PerPartition []int64 // records in each partition (end − start offset)
	Lag          int64   // the group's total lag
}

// Inspect reads topic metadata, the group, per-partition record counts and
// the keys of up to sample records from the start of the topic.
func Inspect(ctx context.Context, brokers []string, topic, group string, sample int) (Live, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return Live{}, fmt.Errorf("doctor: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	live := Live{Topic: topic}
	if err := live.readOffsets(ctx, adm); err != nil {
		return live, err
	}
	if group != "" {
		if err := live.readGroup(ctx, adm, group); err != nil {
			return live, err
		}
	}
	live.sampleKeys(ctx, cl, sample)
	return live, nil
}

func (l *Live) readOffsets(ctx context.Context, adm *kadm.Client) error {
	starts, err := adm.ListStartOffsets(ctx, l.Topic)
	if err != nil {
		return fmt.Errorf("doctor: start offsets of %s: %w", l.Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, l.Topic)
	if err != nil {
		return fmt.Errorf("doctor: end offsets of %s: %w", l.Topic, err)
	}
	parts := ends[l.Topic]
	if len(parts) == 0 {
		return fmt.Errorf("doctor: topic %s not found", l.Topic)
	}
	l.Partitions = len(parts)
	l.PerPartition = make([]int64, len(parts))
	for p, end := range parts {
		if end.Err != nil {
			return fmt.Errorf("doctor: end offset of %s/%d: %w", l.Topic, p, end.Err)
		}
		start, _ := starts.Lookup(l.Topic, p)
		if int(p) < len(l.PerPartition) {
			l.PerPartition[p] = end.Offset - start.Offset
		}
	}
	return nil
}

func (l *Live) readGroup(ctx context.Context, adm *kadm.Client, group string) error {
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		return fmt.Errorf("doctor: group %s: %w", group, err)
	}
	g, ok := lags[group]
	if !ok {
		return nil
	}
	if err := errors.Join(g.DescribeErr, g.FetchErr); err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return nil // no member has joined yet: zero members
		}
		return fmt.Errorf("doctor: group %s: %w", group, err)
	}
	l.Members = len(g.Members)
	l.Lag = g.Lag.TotalByTopic()[l.Topic].Lag
	return nil
}

// sampleKeys reads up to n records from the start, for at most 2 seconds.
func (l *Live) sampleKeys(ctx context.Context, cl *kgo.Client, n int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for l.Sampled < n && ctx.Err() == nil {
		cl.PollRecords(ctx, n-l.Sampled).EachRecord(func(r *kgo.Record) {
			l.Sampled++
			if r.Key == nil {
				l.Keyless++
			}
		})
	}
}

// MaxOverMean is the fullest partition's record count over the mean: 1 is
// an even spread; the article's keyless bursts show far more.
func (l Live) MaxOverMean() float64 {
	var total, most int64
	for _, n := range l.PerPartition {
		total += n
		most = max(most, n)
	}
	if total == 0 {
		return 0
	}
	return float64(most) * float64(len(l.PerPartition)) / float64(total)
}

// Apply puts what the cluster shows into s: the partition count, the
// group's size (when it has members) and whether most records are keyless.
func (l Live) Apply(s Settings) Settings {
	if l.Partitions > 0 {
		s.Partitions = l.Partitions
	}
	if l.Members > 0 {
		s.Consumers = l.Members
	}
	if l.Sampled > 0 {
		s.Keyless = l.Keyless*2 > l.Sampled
	}
	return s
}

// DiagnoseLive diagnoses s as the cluster shows it, adding what only the
// live data proves: records bunched in few partitions.
func DiagnoseLive(s Settings, l Live) []Finding {
	findings := Diagnose(l.Apply(s))
	if skew := l.MaxOverMean(); skew > 2 {
		findings = append(findings, Finding{
			Trap:  "partition-skew",
			Title: fmt.Sprintf("records bunch in few partitions of %s", l.Topic),
			Detail: fmt.Sprintf("the fullest partition holds %.1f× the mean (%d partitions); %d of %d sampled records have no key",
				skew, l.Partitions, l.Keyless, l.Sampled),
			Fix: "key every event by its request UUID so bursts spread over all partitions",
		})
	}
	return findings
}
