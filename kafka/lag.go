package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LagReader reads consumer groups' lag from the brokers, for metrics. It is
// safe for concurrent use.
type LagReader struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewLagReader returns a lag reader on a client built from opts, which must
// name the seed brokers (kgo.SeedBrokers, or Conn.Opts for TLS and SASL). It
// does not connect until the first Lag.
func NewLagReader(opts ...kgo.Opt) (*LagReader, error) {
	// KIP-714 telemetry off, as for the producer: nothing reads it.
	cl, err := kgo.NewClient(append(opts, kgo.DisableClientMetrics())...)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag reader: %w", err)
	}
	return &LagReader{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Lag returns the lag of group by topic and partition: the partition's end
// offset minus the group's committed offset, or minus the start offset for
// a partition the group has not committed yet. It asks the brokers each
// time (describe the group, fetch its offsets, list start and end
// offsets): the group's committed offsets are the ones a new owner would
// start from, whoever committed them. Partitions whose offsets could not be
// listed are left out.
func (l *LagReader) Lag(ctx context.Context, group string) (map[string]map[int32]int64, error) {
	lags, err := l.adm.Lag(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag of %s: %w", group, err)
	}
	gl, ok := lags[group]
	if !ok {
		return nil, fmt.Errorf("kafka: lag of %s: group not described", group)
	}
	if err := gl.Error(); err != nil {
		return nil, fmt.Errorf("kafka: lag of %s: %w", group, err)
	}
	out := make(map[string]map[int32]int64, len(gl.Lag))
	for topic, ps := range gl.Lag {
		for p, ml := range ps {
			if ml.Err != nil || ml.Lag < 0 {
				continue
			}
			if out[topic] == nil {
				out[topic] = make(map[int32]int64, len(ps))
			}
			out[topic][p] = ml.Lag
		}
	}
	return out, nil
}

// Close closes the reader's connections.
func (l *LagReader) Close() { l.cl.Close() }
