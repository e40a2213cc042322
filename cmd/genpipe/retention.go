package main

import (
	"errors"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/broker"
)

// retentionSettings bound what the embedded broker of `genpipe broker` and
// `genpipe up` keeps: see broker.WithRetention.
type retentionSettings struct {
	Age   time.Duration
	Bytes int64
}

func (r *retentionSettings) register(f *flags) {
	f.Duration(&r.Age, "retention", "GENPIPE_KAFKA_RETENTION", broker.DefaultRetention,
		"how long the embedded broker keeps a record, read or not (negative: forever); keep it beyond the longest a stopped consumer "+
			"may stay stopped, or its backlog is lost. The dead-letter topic keeps its records until deleted", notBelowMs)
	f.Int64(&r.Bytes, "retention-bytes", "GENPIPE_KAFKA_RETENTION_BYTES", broker.DefaultRetentionBytes,
		"the most bytes of records the embedded broker keeps a partition, the oldest dropped first, read or not (negative: no bound)",
		notZero)
}

// options bound the retention of every topic but the dead-letter topic,
// whose records wait for an operator (genpipe dlq) however long that takes.
func (r retentionSettings) options() []broker.Option {
	return []broker.Option{broker.WithRetention(r.Age, r.Bytes), broker.WithKeep(genpipe.DefaultTopics().DeadLetters)}
}

// notBelowMs wants a duration of at least a millisecond, or a negative one.
func notBelowMs(d time.Duration) error {
	if d >= 0 && d < time.Millisecond {
		return errors.New("want at least 1ms, or a negative value for none")
	}
	return nil
}

func notZero(n int64) error {
	if n == 0 {
		return errors.New("want more than 0, or a negative value for none")
	}
	return nil
}
