package loadtest

import (
	"fmt"
	"math"
	"time"

	"github.com/genpipe/genpipe"
)

// Multi-tenant workloads: how the AI's capacity is shared when several
// tenants (and priorities) have work waiting. Each runs on a system
// scenario (article by default) and is checked against its targets.
const (
	// WorkloadNoisyNeighbor: tenant a (weight 1) submits a backlog at once;
	// once it waits, tenant b (weight 1) sends a steady trickle at a tenth
	// of the AI's capacity. Targets: b's p99 wait at most twice the
	// generative AI's latency, and the AI's utilization at least 0.95
	// while a's backlog waits.
	WorkloadNoisyNeighbor = "noisy-neighbor"
	// WorkloadPriority: tenant a submits a backlog of normal requests,
	// then, while it waits, a few high ones. Target: every high request
	// starts within twice the stage's latency.
	WorkloadPriority = "priority"
	// WorkloadWeights: tenants a (weight 3) and b (weight 1) each submit
	// half the backlog at once, interleaved. Target: while both have work
	// waiting, a gets 75% ± 5 points of the generative calls and b 25%.
	WorkloadWeights = "weights"
)

// Workloads lists the multi-tenant workloads.
var Workloads = []string{WorkloadNoisyNeighbor, WorkloadPriority, WorkloadWeights}

// DefaultBacklog is a multi-tenant workload's backlog: 5,000 requests, four
// minutes of the article's Generative AI (64 slots, 3 s).
const DefaultBacklog = 5000

// Targets of the multi-tenant workloads (issue 11).
const (
	// targetWaitLatencies bounds a waiting request's wait (noisy
	// neighbor's b at p99, priority's high at most) in generative AI
	// latencies.
	targetWaitLatencies = 2
	// targetUtilization is the least utilization of the Generative AI
	// while the noisy neighbor's backlog waits.
	targetUtilization = 0.95
	// targetShareTolerance is how far a measured share may be from its
	// weight's (in share, so 0.05 is 5 percentage points).
	targetShareTolerance = 0.05
)

// Tenants of the multi-tenant workloads.
const (
	tenantA = "a"
	tenantB = "b"
	// priorityRequests is how many high requests the priority workload
	// sends behind its backlog.
	priorityRequests = 10
)

// TenantWorkload returns the multi-tenant workload name with a backlog of
// backlog requests (0 means DefaultBacklog) on scenario sc, whose capacity
// sets the trickles' rates and the streams' start times: they start once
// the backlog waits and end before it would drain.
func TenantWorkload(name string, backlog int, sc Scenario) (Workload, error) {
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	maxRps := sc.MaxRps()
	if maxRps <= 0 || math.IsInf(maxRps, 0) || math.IsNaN(maxRps) {
		return Workload{}, fmt.Errorf("loadtest: workload %s needs a scenario with capacities and latencies", name)
	}
	// drain is how long the backlog alone keeps the AI busy.
	drain := time.Duration(float64(backlog) / maxRps * float64(time.Second))
	one := genpipe.Share{Tenant: tenantA, Priority: genpipe.PriorityNormal, Weight: 1}
	backlogOf := func(sh genpipe.Share, n int) Stream {
		return Stream{Share: sh, Shape: ShapeBurst, Requests: n, BurstSize: n, Rate: maxRps}
	}
	switch name {
	case WorkloadNoisyNeighbor:
		// b sends for 40% of the drain, from 10% of it on, at a tenth of
		// the capacity: about 0.04 × backlog requests.
		rate := maxRps / 10
		n := max(int(math.Round(rate*0.4*drain.Seconds())), 5)
		b := genpipe.Share{Tenant: tenantB, Priority: genpipe.PriorityNormal, Weight: 1}
		return Workload{Name: name, Streams: []Stream{
			backlogOf(one, backlog),
			{Share: b, Start: drain / 10, Shape: ShapeSteady, Requests: n, Rate: rate},
		}}, nil
	case WorkloadPriority:
		high := one
		high.Priority = genpipe.PriorityHigh
		return Workload{Name: name, Streams: []Stream{
			backlogOf(one, backlog),
			{Share: high, Start: drain / 10, Shape: ShapeSteady, Requests: priorityRequests,
				Rate: priorityRequests / (0.4 * drain.Seconds())},
		}}, nil
	case WorkloadWeights:
		a, b := one, genpipe.Share{Tenant: tenantB, Priority: genpipe.PriorityNormal, Weight: 1}
		a.Weight = 3
		half := max(backlog/2, 1)
		return Workload{Name: name, Streams: []Stream{backlogOf(a, half), backlogOf(b, half)}}, nil
	}
	return Workload{}, fmt.Errorf("loadtest: unknown workload %q (noisy-neighbor, priority or weights)", name)
}

// checkTargets returns the targets of workload name (none for other
// workloads) checked against res, measured on scenario sc.
func checkTargets(name string, res Result, sc Scenario) []Target {
	rows := map[string]TenantResult{}
	for _, t := range res.Tenants {
		rows[t.Name()] = t
	}
	latency := sc.GenerateLatency
	waitBound := targetWaitLatencies * latency
	waitWant := fmt.Sprintf("≤ %s (%d × the generative AI's latency, %s)", seconds(waitBound), targetWaitLatencies, seconds(latency))
	var out []Target
	switch name {
	case WorkloadNoisyNeighbor:
		b := rows[tenantB]
		out = append(out, waitTarget(tenantB+" p99 wait", b, b.WaitP99Ms, waitBound, waitWant))
		a := rows[tenantA]
		out = append(out, Target{Name: "generative AI utilization while " + tenantA + "'s backlog waits",
			Got: fmt.Sprintf("%.3f", a.UtilizationWhileWaiting), Want: fmt.Sprintf("≥ %.2f", targetUtilization),
			Pass: a.Started > 0 && a.UtilizationWhileWaiting >= targetUtilization})
	case WorkloadPriority:
		high := rows[tenantA+"/"+string(genpipe.PriorityHigh)]
		out = append(out, waitTarget("high max wait", high, high.WaitMaxMs, waitBound, waitWant))
	case WorkloadWeights:
		var weights int
		for _, t := range res.Tenants {
			weights += t.Weight
		}
		for _, t := range res.Tenants {
			want := float64(t.Weight) / float64(max(weights, 1))
			out = append(out, Target{Name: t.Name() + " share while both wait",
				Got:  fmt.Sprintf("%.1f%% of %d calls", 100*t.ContendedShare, res.ContendedCalls),
				Want: fmt.Sprintf("%.0f%% ± %.0f (weight %d of %d)", 100*want, 100*targetShareTolerance, t.Weight, weights),
				// Too few contended calls say nothing about the shares.
				Pass: res.ContendedCalls >= 20*len(res.Tenants) && math.Abs(t.ContendedShare-want) <= targetShareTolerance})
		}
	}
	return out
}

// waitTarget checks a row's wait; a row whose requests did not all reach
// the AI fails whatever its figures.
func waitTarget(name string, row TenantResult, gotMs float64, bound time.Duration, want string) Target {
	t := Target{Name: name, Want: want, Got: seconds(time.Duration(gotMs * float64(time.Millisecond)))}
	switch {
	case row.Requests == 0:
		t.Got = "no requests"
	case row.Started < row.Requests:
		t.Got += fmt.Sprintf(" (%d of %d never started)", row.Requests-row.Started, row.Requests)
	default:
		t.Pass = gotMs <= float64(bound.Milliseconds())
	}
	return t
}

// seconds formats d in seconds, to a tenth below ten.
func seconds(d time.Duration) string {
	s := d.Seconds()
	if s < 10 {
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}
