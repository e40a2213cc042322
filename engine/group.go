package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// commitTimeout bounds one offset commit, so that a broker that went
	// away cannot hold a revoke or a shutdown forever.
	commitTimeout = 10 * time.Second
	// metadataTimeout bounds the lookup of the topics' partition counts.
	metadataTimeout = 5 * time.Second
	// abandonGrace is how long a release waits for handlers after
	// canceling them: a handler that honours its context returns within
	// it, and one that does not must not hold the rebalance.
	abandonGrace = time.Second
)

// onAssigned takes new partitions and recomputes the share. franz-go calls it
// from its group goroutine, before fetching the partitions.
func (e *Engine) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	total, firsts, err := e.totalPartitions(ctx, cl)
	if err != nil {
		e.log.Warn("engine: cannot read the topics' partition counts; keeping the last known", "err", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.st
	if total > 0 {
		st.total, st.firsts = total, firsts
	}
	for _, tp := range flatten(assigned) {
		if p := st.parts[tp]; p == nil || p.leaving {
			st.newPartition(tp)
		}
	}
	e.recomputeShareLocked()
	e.dispatchLocked()
	e.log.Info("engine: partitions assigned", "assigned", assigned, "owned", len(st.parts), "total", st.total, "share", st.share, "limit", st.limit)
}

// onRevoked gives partitions up: see release. franz-go calls it from its
// group goroutine, concurrently with polls and handlers, and the partitions
// move to their next owner only once it returns.
func (e *Engine) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	tps := flatten(revoked)
	if len(tps) == 0 {
		return
	}
	e.mu.Lock()
	e.st.revokes++
	e.mu.Unlock()
	e.release(ctx, cl, tps, "revoke")
}

// onLost drops partitions the member lost without a clean revoke (its
// session expired): another member may own them already, so committing for
// them would be wrong, and their running handlers are canceled at once.
func (e *Engine) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.losses++
	for _, p := range e.leaveLocked(flatten(lost)) {
		p.gone = true
		p.cancel()
		e.forgetLocked(p)
	}
	e.log.Warn("engine: partitions lost; their unfinished records will be handled again", "lost", lost, "share", e.st.share)
}

// release gives the partitions tps up, all of them when tps is nil: it stops
// starting their records, waits up to the shutdown timeout for their running
// handlers (and for the engine's running handlers to fit its new, smaller
// share, so that the next owner's share never adds up past the capacity),
// cancels what still runs, and commits each partition's committable offset.
func (e *Engine) release(ctx context.Context, cl *kgo.Client, tps []TopicPartition, why string) {
	e.mu.Lock()
	if tps == nil {
		for tp := range e.st.parts {
			tps = append(tps, tp)
		}
	}
	ps := e.leaveLocked(tps)
	e.mu.Unlock()
	if len(ps) == 0 {
		// Already released (leaving the group after a shutdown): handlers
		// still running were given up on, and waiting for them again
		// would only hold the rebalance.
		return
	}

	fits := func() bool { return e.st.inflight <= e.st.limit && runningIn(ps) == 0 }
	if !e.waitUntil(fits, e.cfg.shutdownTimeout) {
		n := e.cancelRunning(ps)
		e.log.Warn("engine: gave up on running handlers; their records will be handled again",
			"when", why, "canceled", n, "timeout", e.cfg.shutdownTimeout)
		e.waitUntil(func() bool { return runningIn(ps) == 0 }, abandonGrace)
	}
	e.commit(ctx, cl, ps, why)

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range ps {
		p.gone = true
		p.cancel()
		e.forgetLocked(p)
	}
	if len(ps) > 0 {
		e.log.Info("engine: partitions released", "when", why, "partitions", len(ps), "share", e.st.share, "limit", e.st.limit)
	}
}

// forgetLocked removes p from the owned partitions, unless it was reassigned
// in between. The caller holds e.mu.
func (e *Engine) forgetLocked(p *partition) {
	if e.st.parts[p.tp] == p {
		delete(e.st.parts, p.tp)
	}
}

// waitUntil waits until cond, evaluated under e.mu, holds, or for d. It
// reports whether cond held.
func (e *Engine) waitUntil(cond func() bool, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		e.mu.Lock()
		ok, ch := cond(), e.st.waitChan()
		e.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			e.mu.Lock()
			defer e.mu.Unlock()
			return cond()
		}
	}
}

// cancelRunning cancels the handlers of ps and returns how many were
// running.
func (e *Engine) cancelRunning(ps []*partition) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := runningIn(ps)
	for _, p := range ps {
		p.cancel()
	}
	return n
}

// runningIn returns the handlers running for ps. The caller holds e.mu.
func runningIn(ps []*partition) int {
	n := 0
	for _, p := range ps {
		n += p.inflight
	}
	return n
}

// commitLoop commits what became committable every commit interval until
// ctx is done.
func (e *Engine) commitLoop(ctx context.Context, cl *kgo.Client) {
	for sleep(ctx, e.cfg.commitInterval) {
		e.commit(ctx, cl, nil, "periodic")
	}
}

// commit commits the committable offset of each partition of ps (of every
// partition still owned when ps is nil) that moved since its last commit.
// Failures are logged: the next commit covers the same offsets, and if there
// is none, the records are handled again (at least once).
func (e *Engine) commit(ctx context.Context, cl *kgo.Client, ps []*partition, why string) {
	e.commitMu.Lock()
	defer e.commitMu.Unlock()
	e.mu.Lock()
	offsets, upTo := e.committableLocked(ps)
	e.mu.Unlock()
	if len(upTo) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	if err := commitSync(ctx, cl, offsets); err != nil {
		e.log.Warn("engine: commit failed", "when", why, "offsets", offsets, "err", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for p, off := range upTo {
		p.committed = max(p.committed, off)
	}
}

// committableLocked returns the offsets to commit for ps (nil: all owned),
// and per partition the offset it stands for. The caller holds e.mu.
func (e *Engine) committableLocked(ps []*partition) (map[string]map[int32]kgo.EpochOffset, map[*partition]int64) {
	if ps == nil {
		for _, p := range e.st.parts {
			ps = append(ps, p)
		}
	}
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	upTo := make(map[*partition]int64)
	for _, p := range ps {
		off, ok := p.tracker.Committable()
		if p.gone || !ok || off <= p.committed {
			continue
		}
		if offsets[p.tp.Topic] == nil {
			offsets[p.tp.Topic] = make(map[int32]kgo.EpochOffset)
		}
		// The epoch of the newest polled record is at least that of the
		// record before off; a newer epoch only makes the next owner's
		// truncation check look from a later epoch, which is safe.
		offsets[p.tp.Topic][p.tp.Partition] = kgo.EpochOffset{Epoch: p.epoch, Offset: off}
		upTo[p] = off
	}
	return offsets, upTo
}

func commitSync(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var err error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
		if cerr != nil {
			err = cerr
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					err = errors.Join(err, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr))
				}
			}
		}
	})
	return err
}

// totalPartitions returns the number of partitions of the consumed topics,
// and where each topic's partitions start when all are numbered in one row
// (topics in name order), which every engine of the group agrees on.
func (e *Engine) totalPartitions(ctx context.Context, cl *kgo.Client) (int, map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	// Not closed: closing a kadm client closes the kgo client under it.
	tds, err := kadm.NewClient(cl).ListTopics(ctx, e.topics...)
	if err != nil {
		return 0, nil, fmt.Errorf("list topics %v: %w", e.topics, err)
	}
	total, firsts := 0, map[string]int{}
	for _, topic := range tds.Names() { // sorted
		td := tds[topic]
		if td.Err != nil {
			return 0, nil, fmt.Errorf("topic %s: %w", td.Topic, td.Err)
		}
		firsts[topic] = total
		total += len(td.Partitions)
	}
	return total, firsts, nil
}

func flatten(m map[string][]int32) []TopicPartition {
	var tps []TopicPartition
	for t, ps := range m {
		for _, p := range ps {
			tps = append(tps, TopicPartition{t, p})
		}
	}
	return tps
}
