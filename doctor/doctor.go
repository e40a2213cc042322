// Package doctor names the traps of the source article in a Kafka
// pipeline's settings, with the fix and the numbers behind each:
//
//   - keyless records with batching (linger, batch.size) under the sticky
//     partitioner put a whole burst in one partition, so most consumers idle;
//   - max.poll.records × handler time above max.poll.interval.ms makes the
//     Java consumer leave its group mid-batch: rebalance, no commit, the
//     records are consumed (and paid for) twice;
//   - partitions, consumers and AI capacity that do not match leave the AI
//     idle or overload it;
//   - auto-commit with handlers that run after poll returns commits records
//     that were never processed.
//
// Diagnose reads Settings (from a Java-style properties file and flags);
// Inspect adds what a live cluster shows (partitions, group members, keys
// and per-partition record counts).
package doctor

import (
	"fmt"
	"time"
)

// Settings are a Kafka client's settings and the workload behind them.
type Settings struct {
	// Producer.
	Keyless     bool          // events are produced without a key
	Linger      time.Duration // linger.ms
	BatchBytes  int           // batch.size
	Partitioner string        // "sticky" (Java's default for keyless records), "uniform" (round robin), "hash" (by key)
	RecordBytes int           // a typical event's size, to turn batch.size into records

	// Consumer.
	MaxPollRecords  int           // max.poll.records
	MaxPollInterval time.Duration // max.poll.interval.ms
	AutoCommit      bool          // enable.auto.commit
	InFlight        int           // records one consumer processes at once: 1 for a plain poll loop

	// Workload.
	HandlerTime time.Duration // time to process one record (the AI's latency)
	Partitions  int           // partitions of the topic
	Consumers   int           // consumers in the group
	AICapacity  int           // concurrent calls the AI takes
}

// JavaDefaults are the Java client's defaults (Kafka 4.x) and the source
// article's workload: a 3 s AI with capacity 64 behind 64 partitions.
func JavaDefaults() Settings {
	return Settings{
		Keyless: true, Linger: 5 * time.Millisecond, BatchBytes: 16384, Partitioner: "sticky", RecordBytes: 300,
		MaxPollRecords: 500, MaxPollInterval: 5 * time.Minute, AutoCommit: true, InFlight: 1,
		HandlerTime: 3 * time.Second, Partitions: 64, Consumers: 64, AICapacity: 64,
	}
}

// Finding is one trap found.
type Finding struct {
	Trap   string `json:"trap"`   // a stable id: keyless-batching, poll-interval, capacity-mismatch, auto-commit, partition-skew
	Title  string `json:"title"`  // what is wrong, in a line
	Detail string `json:"detail"` // the numbers behind it
	Fix    string `json:"fix"`
}

// Diagnose returns the traps s falls into, most harmful first.
func Diagnose(s Settings) []Finding {
	var out []Finding
	for _, check := range []func(Settings) (Finding, bool){pollInterval, keylessBatching, capacityMismatch, autoCommit} {
		if f, ok := check(s); ok {
			out = append(out, f)
		}
	}
	return out
}

// pollInterval: one poll's batch must be processed before the next poll,
// within max.poll.interval.ms, or the consumer leaves the group.
func pollInterval(s Settings) (Finding, bool) {
	perPoll := batchTime(s)
	if s.MaxPollInterval <= 0 || perPoll <= s.MaxPollInterval {
		return Finding{}, false
	}
	safe := max(int(s.MaxPollInterval/2/perRecord(s)), 1)
	return Finding{
		Trap:  "poll-interval",
		Title: "a poll's batch outlasts max.poll.interval.ms: the consumer leaves the group mid-batch",
		Detail: fmt.Sprintf("max.poll.records %d × %s per record / %d at once = %s per poll > max.poll.interval.ms %s: "+
			"the group rebalances, the batch's offsets are not committed, and its records are consumed again (each AI call paid twice)",
			s.MaxPollRecords, s.HandlerTime, max(s.InFlight, 1), perPoll.Round(time.Second), s.MaxPollInterval),
		Fix: fmt.Sprintf("set max.poll.records to at most %d (half the interval) and commit after processing; "+
			"better, keep polling while handlers run and commit the done prefix (genpipe's engine), so handler time never decides membership", safe),
	}, true
}

// keylessBatching: the sticky partitioner fills one partition's batch
// before moving on, so a burst of keyless events bunches.
func keylessBatching(s Settings) (Finding, bool) {
	if !s.Keyless || s.Partitioner != "sticky" || (s.Linger <= 0 && s.BatchBytes <= s.RecordBytes) {
		return Finding{}, false
	}
	perBatch := max(s.BatchBytes/max(s.RecordBytes, 1), 1)
	return Finding{
		Trap:  "keyless-batching",
		Title: "keyless events with batching go to one partition per batch (sticky partitioner, KIP-480/KIP-794)",
		Detail: fmt.Sprintf("batch.size %d B / ~%d B per event ≈ %d events per batch, all in one partition; with linger.ms %d a burst "+
			"fills partitions one at a time, so of %d consumers most idle while a few work through the burst",
			s.BatchBytes, s.RecordBytes, perBatch, s.Linger.Milliseconds(), s.Consumers),
		Fix: "give every event a unique key (the request UUID): records spread by key hash over all partitions, and one request's events stay in order",
	}, true
}

// capacityMismatch: the work in flight is bounded by partitions ×
// per-consumer concurrency, not by what the AI can take.
func capacityMismatch(s Settings) (Finding, bool) {
	busy := min(s.Partitions, s.Consumers) * max(s.InFlight, 1)
	if s.AICapacity <= 0 || busy == s.AICapacity {
		return Finding{}, false
	}
	f := Finding{Trap: "capacity-mismatch"}
	if busy < s.AICapacity {
		f.Title = "the AI is under-used: partitions and consumers bound the work, not its capacity"
		f.Detail = fmt.Sprintf("min(partitions %d, consumers %d) × %d in flight each = %d concurrent calls for an AI that takes %d: "+
			"at most %.0f%% utilization, %.1f of %.1f requests/s",
			s.Partitions, s.Consumers, max(s.InFlight, 1), busy, s.AICapacity, 100*float64(busy)/float64(s.AICapacity),
			float64(busy)/s.HandlerTime.Seconds(), float64(s.AICapacity)/s.HandlerTime.Seconds())
		f.Fix = fmt.Sprintf("process records of a partition concurrently up to the AI's capacity (%d) and commit the highest contiguous done offset; "+
			"or raise partitions and consumers to %d", s.AICapacity, s.AICapacity)
	} else {
		f.Title = "the AI is oversubscribed: more calls in flight than it takes"
		f.Detail = fmt.Sprintf("min(partitions %d, consumers %d) × %d in flight each = %d concurrent calls for an AI that takes %d: "+
			"the excess gets 429s and retries", s.Partitions, s.Consumers, max(s.InFlight, 1), busy, s.AICapacity)
		f.Fix = fmt.Sprintf("cap the group's calls in flight at %d in total (a share per process, by partitions owned)", s.AICapacity)
	}
	return f, true
}

// autoCommit: the Java client auto-commits what poll returned; with
// handlers still running after poll, that includes unprocessed records.
func autoCommit(s Settings) (Finding, bool) {
	if !s.AutoCommit || s.InFlight <= 1 {
		return Finding{}, false
	}
	return Finding{
		Trap:  "auto-commit",
		Title: "auto-commit commits records that are still being processed",
		Detail: fmt.Sprintf("enable.auto.commit with %d records in flight per consumer: offsets of polled records are committed on the next poll "+
			"whether or not their handlers finished; a crash loses up to %d accepted requests", s.InFlight, s.InFlight),
		Fix: "set enable.auto.commit=false and commit an offset only after its record and every record before it are done",
	}, true
}

// batchTime is how long one poll's records take to process.
func batchTime(s Settings) time.Duration {
	return time.Duration(s.MaxPollRecords) * perRecord(s)
}

func perRecord(s Settings) time.Duration { return s.HandlerTime / time.Duration(max(s.InFlight, 1)) }
