package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
)

// Headers of a dead letter: the record keeps its key and value, and these
// say where it came from and why it was set aside.
const (
	HeaderReason    = "genpipe-dlq-reason"
	HeaderStage     = "genpipe-dlq-stage"
	HeaderAttempts  = "genpipe-dlq-attempts"
	HeaderTopic     = "genpipe-dlq-topic"
	HeaderPartition = "genpipe-dlq-partition"
	HeaderOffset    = "genpipe-dlq-offset"
	HeaderAt        = "genpipe-dlq-at"
	// HeaderValueBytes is the record's value length, on a dead letter
	// that keeps less of it (see maxDeadLetterValue).
	HeaderValueBytes = "genpipe-dlq-value-bytes"
	// HeaderReplayedFrom marks a record `genpipe dlq replay` wrote back to
	// its topic: the dead letter's id (partition:offset).
	HeaderReplayedFrom = "genpipe-replayed-from"
)

// Bounds of what a dead letter keeps of its record. A genpipe event is a
// few kilobytes (see genpipe.MaxDescriptionRunes), so a longer value is
// not one; its first 64 KiB show what it was, and the whole of it could be
// more than the producer sends in one record (1 MB), leaving the record
// undone for ever. The dead letter names where the whole record is (topic,
// partition, offset) for as long as that topic keeps it.
const (
	maxDeadLetterValue = 64 << 10
	maxDeadLetterKey   = 1 << 10
)

// DeadLetters is the dead-letter topic, written through a Producer.
type DeadLetters struct {
	p     *Producer
	topic string
}

// NewDeadLetters returns the dead-letter queue on topic.
func NewDeadLetters(p *Producer, topic string) *DeadLetters { return &DeadLetters{p: p, topic: topic} }

// SendDeadLetter writes d to the dead-letter topic (acks=all), under the
// record's own key, or the source partition and offset for a keyless one.
// A value over maxDeadLetterValue is cut to it, a key to maxDeadLetterKey;
// if the topic refuses the record as too large all the same (its
// max.message.bytes), the dead letter goes without the value.
func (q *DeadLetters) SendDeadLetter(ctx context.Context, d genpipe.DeadLetter) error {
	key := string(d.Key[:min(len(d.Key), maxDeadLetterKey)])
	if key == "" {
		key = fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset)
	}
	headers := map[string]string{
		HeaderReason:    d.Reason,
		HeaderStage:     d.Stage,
		HeaderAttempts:  strconv.Itoa(d.Attempts),
		HeaderTopic:     d.Topic,
		HeaderPartition: strconv.Itoa(int(d.Partition)),
		HeaderOffset:    strconv.FormatInt(d.Offset, 10),
		HeaderAt:        d.At.UTC().Format(time.RFC3339Nano),
	}
	value := d.Value
	if len(value) > maxDeadLetterValue {
		value, headers[HeaderValueBytes] = value[:maxDeadLetterValue], strconv.Itoa(len(d.Value))
	}
	err := q.p.PublishHeaders(ctx, q.topic, key, value, headers)
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
		headers[HeaderValueBytes] = strconv.Itoa(len(d.Value))
		err = q.p.PublishHeaders(ctx, q.topic, key, nil, headers)
	}
	return err
}

// StoredDeadLetter is a dead letter as read back from the topic.
type StoredDeadLetter struct {
	genpipe.DeadLetter
	ID string // partition:offset in the dead-letter topic
	// ValueBytes is the record's value length when the dead letter keeps
	// less of it (Value is its start, or nothing); 0 when it is whole.
	ValueBytes int
}

// ReadDeadLetters reads every record of the dead-letter topic, oldest
// first per partition, up to the end offsets when it started.
func (c *Conn) ReadDeadLetters(ctx context.Context, topic string) ([]StoredDeadLetter, error) {
	cl, err := kgo.NewClient(append(c.Opts(), kgo.DisableClientMetrics())...)
	if err != nil {
		return nil, fmt.Errorf("kafka: read dead letters: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, c.fail("end offsets of "+topic, err)
	}
	start := map[string]map[int32]kgo.Offset{topic: {}}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			start[topic][o.Partition] = kgo.NewOffset().AtStart()
			remaining[o.Partition] = o.Offset
		}
	})
	var out []StoredDeadLetter
	if len(remaining) == 0 {
		return out, nil
	}
	cl.AddConsumePartitions(start)
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kafka: read dead letters: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			out = append(out, parseDeadLetter(r))
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

func parseDeadLetter(r *kgo.Record) StoredDeadLetter {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	d := StoredDeadLetter{ID: fmt.Sprintf("%d:%d", r.Partition, r.Offset)}
	d.Key, d.Value = r.Key, r.Value
	d.Reason, d.Stage, d.Topic = h[HeaderReason], h[HeaderStage], h[HeaderTopic]
	d.Attempts, _ = strconv.Atoi(h[HeaderAttempts])
	p, _ := strconv.Atoi(h[HeaderPartition])
	d.Partition = int32(p)
	d.Offset, _ = strconv.ParseInt(h[HeaderOffset], 10, 64)
	d.ValueBytes, _ = strconv.Atoi(h[HeaderValueBytes])
	if d.At, _ = time.Parse(time.RFC3339Nano, h[HeaderAt]); d.At.IsZero() {
		d.At = r.Timestamp
	}
	return d
}

// ReplayDeadLetter writes d back to the topic it came from, under its key.
// A genpipe event gets its Replay raised by one, so a stage that failed
// for good is tried again (and a second replay of the same dead letter
// does not pay twice: it carries the same generation). A record that is
// not an event (poison) goes back as it was, for a build that reads it.
func ReplayDeadLetter(ctx context.Context, p *Producer, d StoredDeadLetter) error {
	if d.Topic == "" {
		return fmt.Errorf("dead letter %s has no source topic", d.ID)
	}
	if d.ValueBytes > 0 {
		return fmt.Errorf("dead letter %s keeps %d of the record's %d bytes: replayed, it would be another record (the whole one is at %s/%d/%d while that topic keeps it)",
			d.ID, len(d.Value), d.ValueBytes, d.Topic, d.Partition, d.Offset)
	}
	value := d.Value
	if e, err := genpipe.DecodeEvent(d.Value); err == nil {
		e.Replay++
		if value, err = genpipe.EncodeEvent(e); err != nil {
			return fmt.Errorf("replay %s: %w", d.ID, err)
		}
	}
	key := string(d.Key)
	if key == "" {
		key = d.ID
	}
	if err := p.PublishHeaders(ctx, d.Topic, key, value, map[string]string{HeaderReplayedFrom: d.ID}); err != nil {
		return fmt.Errorf("replay %s to %s: %w", d.ID, d.Topic, err)
	}
	return nil
}
