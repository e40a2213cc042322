package doctor

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
	Bursts       []Burst // sampled records grouped by time
}

// Burst is a run of sampled records produced close together in time, and
// how many partitions they went to.
type Burst struct {
	Records    int
	Partitions int
}

// Inspect reads topic metadata, the group, per-partition record counts and
// the keys of up to sample records from the start of the topic. opts are
// how to connect (TLS, SASL: kafka.Conn.Opts), after brokers.
func Inspect(ctx context.Context, brokers []string, topic, group string, sample int, opts ...kgo.Opt) (Live, error) {
	opts = append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
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

// sampleKeys reads up to n records from the start, for at most 2 seconds,
// counting keys and grouping the records into bursts.
func (l *Live) sampleKeys(ctx context.Context, cl *kgo.Client, n int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var sampled []*kgo.Record
	for len(sampled) < n && ctx.Err() == nil {
		sampled = append(sampled, cl.PollRecords(ctx, n-len(sampled)).Records()...)
	}
	for _, r := range sampled {
		if r.Key == nil {
			l.Keyless++
		}
	}
	l.Sampled = len(sampled)
	l.Bursts = bursts(sampled, burstGap)
}

// burstGap separates bursts: records produced further apart than this are
// not competing for consumers at the same moment.
const burstGap = 20 * time.Millisecond

// bursts groups records by produce time and counts the partitions each
// group used.
func bursts(records []*kgo.Record, gap time.Duration) []Burst {
	sort.Slice(records, func(i, j int) bool { return records[i].Timestamp.Before(records[j].Timestamp) })
	var out []Burst
	first := 0
	for i := 1; i <= len(records); i++ {
		if i < len(records) && records[i].Timestamp.Sub(records[i-1].Timestamp) <= gap {
			continue
		}
		parts := map[int32]bool{}
		for _, r := range records[first:i] {
			parts[r.Partition] = true
		}
		out = append(out, Burst{Records: i - first, Partitions: len(parts)})
		first = i
	}
	return out
}

// BurstSpread is, over bursts big enough to fill every partition, the
// partitions used over the partitions available: near 1 when records
// spread, near 1/partitions when each burst piles into one partition.
// It is 0 when no burst was big enough to tell.
func (l Live) BurstSpread() float64 {
	var used, possible int
	for _, b := range l.Bursts {
		if b.Records >= 2*l.Partitions {
			used += b.Partitions
			possible += l.Partitions
		}
	}
	if possible == 0 {
		return 0
	}
	return float64(used) / float64(possible)
}

// MaxOverMean is the fullest partition's record count over the mean: 1 is
// an even spread; the article's keyless bursts show far more.
func (l Live) MaxOverMean() float64 {
	total, most := l.records()
	if total == 0 {
		return 0
	}
	return float64(most) * float64(len(l.PerPartition)) / float64(total)
}

// records returns the topic's record count and its fullest partition's.
func (l Live) records() (total, most int64) {
	for _, n := range l.PerPartition {
		total += n
		most = max(most, n)
	}
	return total, most
}

// minRecordsPerPartition is how many records a partition should hold on
// average before an uneven spread means anything: a handful of keyed
// records lands unevenly by chance.
const minRecordsPerPartition = 10

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
// live data proves: bursts that pile into few partitions, or a topic whose
// records sit unevenly.
func DiagnoseLive(s Settings, l Live) []Finding {
	findings := Diagnose(l.Apply(s))
	total, _ := l.records()
	spread, skew := l.BurstSpread(), l.MaxOverMean()
	bunched := spread > 0 && spread < 0.5
	uneven := skew > 2 && total >= int64(minRecordsPerPartition*l.Partitions)
	if bunched || uneven {
		findings = append(findings, Finding{
			Trap:  "partition-skew",
			Title: fmt.Sprintf("records bunch in few partitions of %s", l.Topic),
			Detail: fmt.Sprintf("bursts used %.0f%% of the %d partitions; the fullest partition holds %.1f× the mean; %d of %d sampled records have no key",
				100*spread, l.Partitions, skew, l.Keyless, l.Sampled),
			Fix: "key every event by its request UUID so bursts spread over all partitions",
		})
	}
	return findings
}
