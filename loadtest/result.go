// Package loadtest is genpipe's load-test lab: it drives one workload
// through the pipeline under several consumer profiles (naive, article,
// genpipe) and measures what happened, so the source article's 3x and
// genpipe's improvement on it are shown, not claimed.
package loadtest

import "time"

// Report is one `genpipe loadtest` run: the same workload under each profile.
type Report struct {
	Scenario  string    `json:"scenario"`  // "article" (64 partitions, capacity 64, bursts) or "few-partitions" (8 partitions, capacity 64)
	Shape     string    `json:"shape"`     // burst, steady or ramp
	TimeScale float64   `json:"timeScale"` // every duration was multiplied by this; figures are reported unscaled
	StartedAt time.Time `json:"startedAt"`
	Results   []Result  `json:"results"`
}

// Result is what one profile did with the workload. Every figure is
// measured from records, AI calls and group events, never computed from
// settings. Times and rates are unscaled (divided by TimeScale) so they
// compare with the article's.
type Result struct {
	Profile              string  `json:"profile"`              // naive, article or genpipe
	Requests             int     `json:"requests"`             // produced
	Completed            int     `json:"completed"`            // reached a terminal status
	Lost                 int     `json:"lost"`                 // produced and never completed by the end of the run
	ThroughputRps        float64 `json:"throughputRps"`        // completions per second over the saturated window
	MaxRps               float64 `json:"maxRps"`               // min over stages of AI capacity / latency
	Utilization          float64 `json:"utilization"`          // throughputRps / maxRps
	P50Ms                float64 `json:"p50Ms"`                // produce → terminal status
	P95Ms                float64 `json:"p95Ms"`                //
	P99Ms                float64 `json:"p99Ms"`                //
	PartitionMaxOverMean float64 `json:"partitionMaxOverMean"` // records in the fullest requests partition over the mean
	Rebalances           int     `json:"rebalances"`           // partition revocations seen by consumers
	Redeliveries         int     `json:"redeliveries"`         // records handled more than once
	DuplicateAICalls     int     `json:"duplicateAiCalls"`     // AI calls beyond one per request and stage (from the AI's /stats)
	Workers              int     `json:"workers"`              // consumer processes (group members) per stage: engines for genpipe, Java consumers otherwise
	AIMaxConcurrent      int     `json:"aiMaxConcurrent"`      // the most calls either AI had in flight at once (from /stats)
	AIOverCapacity       int64   `json:"aiOverCapacity"`       // calls the AIs refused with 429 because every slot was busy
	// The genpipe profile's scheduling overhead: the time from an AI slot
	// freeing to the next task starting in it, over both stages, in real
	// milliseconds (not unscaled: the scheduler's cost does not shrink
	// with the time scale), and how many were measured.
	SchedOverheadP50Ms float64 `json:"schedOverheadP50Ms,omitempty"`
	SchedOverheadP99Ms float64 `json:"schedOverheadP99Ms,omitempty"`
	SchedOverheadCount int     `json:"schedOverheadCount,omitempty"`

	// Series for the charts.
	CompletionsPerSecond []float64 `json:"completionsPerSecond"` // completions in each unscaled second since the first produce
	RecordsPerPartition  []int64   `json:"recordsPerPartition"`  // records in each partition of the requests topic
	LatenciesMs          []float64 `json:"latenciesMs"`          // every completed request's unscaled latency
}
