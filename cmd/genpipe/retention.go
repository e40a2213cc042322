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
	Age      time.Duration
	Bytes    int64
	KeepRead bool // keep what the pipeline's groups read until the retention drops it
}

func (r *retentionSettings) register(f *flags) {
	f.Duration(&r.Age, "retention", "GENPIPE_KAFKA_RETENTION", broker.DefaultRetention,
		"how long the embedded broker keeps a record, read or not (negative: forever); keep it beyond the longest a stopped consumer "+
			"may stay stopped, or its backlog is lost. The dead-letter topic keeps its records until deleted", notBelowMs)
	f.Int64(&r.Bytes, "retention-bytes", "GENPIPE_KAFKA_RETENTION_BYTES", broker.DefaultRetentionBytes,
		"the most bytes of records the embedded broker keeps a partition, the oldest dropped first, read or not (negative: no bound)",
		notZero)
	f.Bool(&r.KeepRead, "keep-read", "GENPIPE_KAFKA_KEEP_READ", false,
		"keep the records the pipeline's consumer groups have read until the retention drops them; by default the embedded broker "+
			"drops them at its next retention check (every "+broker.DefaultRetentionCheck.String()+"), so that it keeps only the backlog, "+
			"in memory and on disk, however many requests pass")
}

// options bound the retention of every topic but the dead-letter topic,
// whose records wait for an operator (genpipe dlq) however long that takes,
// and, unless KeepRead, drop each pipeline topic's records once the group
// that reads it has committed past them. Each of those topics has one
// reader group; the API's live feed reads the results topic from the
// moment it starts, without a group, and so needs nothing kept.
func (r retentionSettings) options() []broker.Option {
	topics := genpipe.DefaultTopics()
	opts := []broker.Option{broker.WithRetention(r.Age, r.Bytes), broker.WithKeep(topics.DeadLetters)}
	if !r.KeepRead {
		opts = append(opts, broker.WithDropRead(topics.Requests, groupCheck),
			broker.WithDropRead(topics.Checked, groupGenerate), broker.WithDropRead(topics.Results, groupNotifier))
	}
	return opts
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
