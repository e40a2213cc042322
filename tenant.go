package genpipe

import (
	"fmt"
	"strings"
)

// A tenant is who an API key belongs to. The AI stages share their
// capacity among the tenants with work waiting, in proportion to their
// weights, and start higher-priority work first (see docs/architecture.md,
// "Fair shares and priorities").

// DefaultTenant owns every request made without API keys.
const DefaultTenant = "default"

// Tenant weights: a tenant's share of a stage's capacity, among the
// tenants with work waiting at the same priority, is its weight over the
// sum of theirs.
const (
	DefaultWeight = 1
	MaxWeight     = 1000
)

// MaxTenantLen bounds a tenant's name, which travels in every event.
const MaxTenantLen = 64

// Priority says how urgently a request's AI calls should start: waiting
// high-priority work starts before normal, normal before low.
type Priority string

const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// DefaultPriority is a request's priority when it names none.
const DefaultPriority = PriorityNormal

// Priorities lists the priorities, highest first.
var Priorities = []Priority{PriorityHigh, PriorityNormal, PriorityLow}

// Rank orders priorities: high 3, normal 2, low 1; 0 for anything else.
func (p Priority) Rank() int {
	switch p {
	case PriorityHigh:
		return 3
	case PriorityNormal:
		return 2
	case PriorityLow:
		return 1
	default:
		return 0
	}
}

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool { return p.Rank() > 0 }

// ParsePriority reads a priority as a client names it; "" is
// DefaultPriority.
func ParsePriority(s string) (Priority, error) {
	if s == "" {
		return DefaultPriority, nil
	}
	if p := Priority(s); p.Valid() {
		return p, nil
	}
	return "", Errorf(EINVALID, "priority must be %q, %q or %q, not %q", PriorityHigh, PriorityNormal, PriorityLow, s)
}

// Tenant is who an API key belongs to, and what its requests may ask for.
type Tenant struct {
	Name        string
	Weight      int      // DefaultWeight when 0
	MaxPriority Priority // the highest priority its requests may ask for; DefaultPriority when ""
	// Budgets are its daily limits per stage (see Budget); none: no limit.
	Budgets []Budget
}

// StageBudgets returns t's budgets on stage.
func (t Tenant) StageBudgets(stage Stage) []Budget {
	var out []Budget
	for _, b := range t.Budgets {
		if b.Stage == stage {
			out = append(out, b)
		}
	}
	return out
}

// Validate reports a tenant that cannot be configured.
func (t Tenant) Validate() error {
	switch {
	case t.Name == "" || len(t.Name) > MaxTenantLen:
		return fmt.Errorf("tenant name %q: want 1 to %d bytes", t.Name, MaxTenantLen)
	case t.Weight < 0 || t.Weight > MaxWeight:
		return fmt.Errorf("tenant %s: weight %d out of range 1..%d", t.Name, t.Weight, MaxWeight)
	case t.MaxPriority != "" && !t.MaxPriority.Valid():
		return fmt.Errorf("tenant %s: unknown priority %q", t.Name, t.MaxPriority)
	}
	for i, b := range t.Budgets {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("tenant %s: budgets[%d]: %w", t.Name, i, err)
		}
	}
	return nil
}

// Allows reports whether the tenant's requests may ask for p.
func (t Tenant) Allows(p Priority) bool {
	ceiling := t.MaxPriority
	if ceiling == "" {
		ceiling = DefaultPriority
	}
	return p.Rank() <= ceiling.Rank()
}

// Share is whose a request is and how urgently it runs: every event about
// the request carries it, so each stage schedules the request without
// reading the status store.
type Share struct {
	Tenant   string   `json:"tenant,omitempty"`   // DefaultTenant when ""
	Priority Priority `json:"priority,omitempty"` // DefaultPriority when ""
	// Weight is the tenant's weight when the request was submitted;
	// DefaultWeight when 0.
	Weight int `json:"weight,omitempty"`
}

// Normalized returns s with its defaults filled in.
func (s Share) Normalized() Share {
	if s.Tenant == "" {
		s.Tenant = DefaultTenant
	}
	if s.Priority == "" {
		s.Priority = DefaultPriority
	}
	if s.Weight == 0 {
		s.Weight = DefaultWeight
	}
	return s
}

func (s Share) validate() error {
	switch {
	case len(s.Tenant) > MaxTenantLen:
		return Errorf(EINVALID, "event with a tenant name of %d bytes (the most is %d)", len(s.Tenant), MaxTenantLen)
	case strings.IndexByte(s.Tenant, 0) >= 0:
		return Errorf(EINVALID, "event with a NUL character in its tenant")
	case s.Priority != "" && !s.Priority.Valid():
		return Errorf(EINVALID, "event with unknown priority %q", s.Priority)
	case s.Weight < 0 || s.Weight > MaxWeight:
		return Errorf(EINVALID, "event with weight %d out of range 0..%d", s.Weight, MaxWeight)
	}
	return nil
}
