package genpipe

import "time"

// SetPublishTimes overrides a Submitter's DefaultPublishLease and
// DefaultPublishWait, so that tests need not wait for them.
func (s *Submitter) SetPublishTimes(lease, wait time.Duration) { s.lease, s.wait = lease, wait }
