package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/backoff"
)

// EnsureTopics creates those of topics that do not exist, each with
// partitions partitions and the cluster's default replication factor, and
// returns once the cluster reports all of them (a real cluster creates topics
// asynchronously). Existing topics are left alone, whatever their partition
// count: growing a topic moves keys to other partitions and would break the
// per-request ordering of events, so it is an operator's decision.
//
// It retries until ctx is done (give it a deadline), except when the
// cluster refuses the connection settings (credentials, certificates), which
// no retry fixes.
func (c *Conn) EnsureTopics(ctx context.Context, partitions int32, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	if partitions < 1 {
		return fmt.Errorf("kafka: ensure topics %v: %d partitions, want at least 1", topics, partitions)
	}
	topics = slices.Compact(slices.Sorted(slices.Values(topics))) // a duplicate would fail CreateTopics
	const retryEvery = 100 * time.Millisecond
	// franz-go answers a metadata request from its cache for
	// MetadataMinAge (5s by default), which would hide a topic we just
	// created for that long.
	cl, err := kgo.NewClient(append(c.Opts(), kgo.MetadataMinAge(retryEvery))...)
	if err != nil {
		return fmt.Errorf("kafka: ensure topics %v: %w", topics, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	err = backoff.Retry(ctx, backoff.Constant(retryEvery), func() error {
		missing, err := missingTopics(ctx, adm, topics)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if err == nil {
			err = createTopics(ctx, adm, partitions, missing)
		}
		if err == nil {
			// Created (or being created by someone else): wait until
			// metadata shows them.
			err = fmt.Errorf("topics %v not visible yet", missing)
		}
		return err
	}, backoff.RetryIf(func(err error) bool { return !isConnConfigError(err) }))
	if err != nil {
		return c.fail(fmt.Sprintf("ensure topics %v", topics), err)
	}
	return nil
}

// missingTopics returns those of topics that metadata does not show with
// their partitions and leaders.
func missingTopics(ctx context.Context, adm *kadm.Client, topics []string) ([]string, error) {
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 || !allLeaders(d) {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

func allLeaders(d kadm.TopicDetail) bool {
	for _, p := range d.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

func createTopics(ctx context.Context, adm *kadm.Client, partitions int32, topics []string) error {
	resps, err := adm.CreateTopics(ctx, partitions, -1, nil, topics...)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}
