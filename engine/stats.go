package engine

// Stats is a snapshot of an engine's state, for tests, logs and metrics.
type Stats struct {
	Capacity        int   // the group's total capacity (WithCapacity)
	Share           int   // this engine's part of it for the partitions it owns
	Limit           int   // handlers allowed at once now: the share, or less after an overload
	InFlight        int   // handlers running, including canceled ones that have not returned
	Buffered        int   // records polled and not finished (queued or running)
	MaxBuffered     int   // the bound on Buffered (WithMaxBuffered)
	Paused          bool  // fetching is paused because the buffer is full
	Owned           int   // partitions owned and not being given up
	TotalPartitions int   // partitions of the consumed topics; 0 until known
	Overloads       int64 // times the limit was cut for an overloaded downstream service
	Handled         int64 // records done, failed ones included
	Failed          int64 // records whose handler returned an error
	Abandoned       int64 // records whose handler was canceled: not done, handled again by the group
	Revokes         int64 // rebalances that took partitions from this engine (shutdown not counted)
	Losses          int64 // times partitions were lost without a clean revoke (session expired)
	Partitions      map[TopicPartition]PartitionStats
}

// PartitionStats is the state of one owned partition.
type PartitionStats struct {
	Committable int64 // the offset the tracker allows to commit; -1 before any record
	Committed   int64 // the last offset this engine committed; -1 if none
	InFlight    int   // handlers running
	Queued      int   // records waiting to start
}

// Stats returns a snapshot of the engine's state. It is safe to call at any
// time, also concurrently with Run.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.st
	s := Stats{
		Capacity:        e.cfg.capacity,
		Share:           st.share,
		Limit:           st.limit,
		InFlight:        st.inflight,
		Buffered:        st.buffered,
		MaxBuffered:     e.cfg.maxBuffered,
		Paused:          st.paused,
		TotalPartitions: st.total,
		Overloads:       st.overloads,
		Handled:         e.handled.Load(),
		Failed:          e.failed.Load(),
		Abandoned:       e.abandoned.Load(),
		Revokes:         st.revokes,
		Losses:          st.losses,
		Partitions:      make(map[TopicPartition]PartitionStats, len(st.parts)),
	}
	for tp, p := range st.parts {
		if !p.leaving {
			s.Owned++
		}
		off, ok := p.tracker.Committable()
		if !ok {
			off = -1
		}
		s.Partitions[tp] = PartitionStats{Committable: off, Committed: p.committed, InFlight: p.inflight, Queued: p.queued}
	}
	return s
}
