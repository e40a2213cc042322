// Package loadtest is genpipe's load-test lab: it drives one workload
// through the pipeline under several consumer profiles (naive, article,
// genpipe) and measures what happened, so the source article's 3x and
// genpipe's improvement on it are shown, not claimed.
package loadtest

import (
	"time"

	"github.com/genpipe/genpipe"
)

// Report is one `genpipe loadtest` run: the same workload under each profile.
type Report struct {
	Scenario  string    `json:"scenario"`           // "article" (64 partitions, capacity 64, bursts) or "few-partitions" (8 partitions, capacity 64)
	Shape     string    `json:"shape"`              // burst, steady or ramp; "tenants" for a multi-tenant workload
	Workload  string    `json:"workload,omitempty"` // the multi-tenant workload: noisy-neighbor, priority or weights
	TimeScale float64   `json:"timeScale"`          // every duration was multiplied by this; figures are reported unscaled
	StartedAt time.Time `json:"startedAt"`
	Results   []Result  `json:"results"`
}

// Result is what one profile did with the workload. Every figure is
// measured from records, AI calls and group events, never computed from
// settings. Times and rates are unscaled (divided by TimeScale) so they
// compare with the article's.
type Result struct {
	Profile       string  `json:"profile"`       // naive, article or genpipe
	Requests      int     `json:"requests"`      // produced
	Completed     int     `json:"completed"`     // reached a terminal status
	Lost          int     `json:"lost"`          // produced and never completed by the end of the run
	ThroughputRps float64 `json:"throughputRps"` // completions per second over the saturated window
	MaxRps        float64 `json:"maxRps"`        // min over stages of AI capacity / latency
	Utilization   float64 `json:"utilization"`   // throughputRps / maxRps
	// IdealUtilization is the utilization, measured the same way, of a
	// pipeline without overhead on the same schedule of arrivals (Ideal):
	// the best any pipeline could score on it. A burst above the limit
	// allows about 1; a ramp that starts below the limit less. It is
	// computed from the schedule and the scenario, not measured.
	IdealUtilization float64 `json:"idealUtilization"`
	// UtilizationOfIdeal is Utilization / IdealUtilization: how close the
	// profile came to the best the schedule allowed; 0 when there is no
	// ideal figure.
	UtilizationOfIdeal   float64 `json:"utilizationOfIdeal"`
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
	// SlotGap* is the scheduling overhead seen by the Generative AI: how
	// long a slot stayed free before the next call took it, while at least
	// its capacity of requests were ready (checked, not started). Real
	// milliseconds, not unscaled: the overhead does not shrink with the
	// time scale.
	SlotGapP50Ms float64 `json:"slotGapP50Ms"`
	SlotGapP99Ms float64 `json:"slotGapP99Ms"`
	SlotGaps     int     `json:"slotGaps"` // how many gaps were measured

	// Series for the charts.
	CompletionsPerSecond []float64 `json:"completionsPerSecond"` // completions in each unscaled second since the first produce
	RecordsPerPartition  []int64   `json:"recordsPerPartition"`  // records in each partition of the requests topic
	LatenciesMs          []float64 `json:"latenciesMs"`          // every completed request's unscaled latency

	// Multi-tenant workloads only: what each tenant's requests at each
	// priority met, and the workload's targets checked against it.
	Tenants []TenantResult `json:"tenants,omitempty"`
	// ContendedCalls is how many generative calls started while every
	// row of Tenants had a request waiting for one: the calls that
	// ContendedShare divides, where the scheduler had a choice to make.
	ContendedCalls int      `json:"contendedCalls,omitempty"`
	Targets        []Target `json:"targets,omitempty"`
}

// TenantResult is what the requests of one tenant at one priority met in a
// multi-tenant workload. Like every figure of a Result it is measured: the
// wait from the lab's produce (which stands for the API's 202) to the
// simulated Generative AI seeing the call start.
type TenantResult struct {
	Tenant    string           `json:"tenant"`
	Priority  genpipe.Priority `json:"priority"`
	Weight    int              `json:"weight"`    // the weight its requests carried
	Requests  int              `json:"requests"`  // produced
	Started   int              `json:"started"`   // reached the Generative AI
	Completed int              `json:"completed"` // reached a terminal status
	WaitP50Ms float64          `json:"waitP50Ms"` // produce → generative call start
	WaitP95Ms float64          `json:"waitP95Ms"` //
	WaitP99Ms float64          `json:"waitP99Ms"` //
	WaitMaxMs float64          `json:"waitMaxMs"` //
	// Share is this row's part of every generative call that completed in
	// the run; over a whole run every request completes, so it follows
	// the workload, not the scheduler.
	Share float64 `json:"share"`
	// ContendedShare is this row's part of the generative calls that
	// started while every row had a request waiting: how the scheduler
	// shared the AI when it had to choose.
	ContendedShare float64 `json:"contendedShare"`
	// UtilizationWhileWaiting is the Generative AI's busy time (calls in
	// flight over its capacity) from its first call to this row's last
	// call starting: how well the AI was used while this row waited.
	UtilizationWhileWaiting float64   `json:"utilizationWhileWaiting"`
	CompletionsPerSecond    []float64 `json:"completionsPerSecond"` // in each unscaled second since the first produce
}

// Name is the row's label: the tenant, and its priority when not normal.
func (t TenantResult) Name() string {
	if t.Priority == "" || t.Priority == genpipe.DefaultPriority {
		return t.Tenant
	}
	return t.Tenant + "/" + string(t.Priority)
}

// Target is one of a multi-tenant workload's targets checked against a
// profile's measured figures.
type Target struct {
	Name string `json:"name"` // what is measured, e.g. "b p99 wait"
	Got  string `json:"got"`  // the measured figure
	Want string `json:"want"` // the bound it must meet, e.g. "≤ 6 s (2 × the generative AI's latency)"
	Pass bool   `json:"pass"`
}
