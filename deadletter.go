package genpipe

import (
	"context"
	"fmt"
	"time"
)

// DeadLetter is a record the pipeline set aside: a poison record (not a
// decodable event of this version, or on the wrong topic), or a request
// whose AI stage failed for good. It keeps the record as it was, where it
// came from and why, so an operator can read it and replay it
// (`genpipe dlq list`, `genpipe dlq replay`).
type DeadLetter struct {
	Topic     string // where the record came from
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Stage     string // the part that set it aside: check, generate or notifier
	Reason    string
	Attempts  int // AI call attempts made; 0 for a poison record
	At        time.Time
}

// MaxBatchBytes bounds what a fetched batch of records may decompress to,
// wherever genpipe consumes. Its producers send batches of at most 1 MB
// uncompressed, so 16 MiB leaves room for other producers', while a
// compressed bomb (a batch under the broker's 1 MB that inflates to
// gigabytes) is never inflated: franz-go's own bound is 1 GiB.
const MaxBatchBytes = 16 << 20

// HeaderUnread marks the record the stage engine hands a handler in place
// of a batch over MaxBatchBytes, which it does not read; the header's
// value says why. The record path dead-letters it.
const HeaderUnread = "genpipe-unread"

// DeadLetterQueue keeps dead letters where an operator can see them.
type DeadLetterQueue interface {
	SendDeadLetter(ctx context.Context, d DeadLetter) error
}

// DeadLetterError is what a stage handler returns for a record that
// belongs in the dead-letter queue. The part that runs the handler knows
// the record (topic, partition, offset) and sends it; the handler says why.
type DeadLetterError struct {
	Reason   string
	Attempts int
}

func (e *DeadLetterError) Error() string {
	if e.Attempts > 0 {
		return fmt.Sprintf("dead letter after %d attempt(s): %s", e.Attempts, e.Reason)
	}
	return "dead letter: " + e.Reason
}
