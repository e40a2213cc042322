package genpipe

// Status is where a request stands. It only moves forward:
// received → checking → generating → done, or to rejected / failed, or —
// before it is done — to canceled (its user no longer wants it) or expired
// (its AI call could not start by its StartBy). A failed request may still
// end done or rejected when an operator replays it from the dead-letter
// queue (failed ranks below them).
type Status string

const (
	StatusReceived   Status = "received"   // accepted and durably queued
	StatusChecking   Status = "checking"   // a check worker is on it
	StatusGenerating Status = "generating" // passed the check, a generate worker is on it
	StatusDone       Status = "done"       // the slide is in the object store
	StatusRejected   Status = "rejected"   // the Checking AI refused the image; Error says why
	StatusFailed     Status = "failed"     // could not be done; Error says why
	StatusCanceled   Status = "canceled"   // its user canceled it before it finished: no AI call starts for it afterwards
	StatusExpired    Status = "expired"    // no AI call of it could start by its StartBy; Error says which and when
)

// Rank orders statuses: a change applies only when it raises the rank, so
// redelivered and late events never move a request backwards.
func (s Status) Rank() int {
	switch s {
	case StatusReceived:
		return 1
	case StatusChecking:
		return 2
	case StatusGenerating:
		return 3
	case StatusFailed:
		return 4
	case StatusDone, StatusRejected, StatusCanceled, StatusExpired:
		return 5
	default:
		return 0
	}
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return s.Rank() > 0 }

// Terminal reports whether s is final: no change follows it.
func (s Status) Terminal() bool { return s.Rank() >= 4 }
