package notifier

import "time"

// WithPublishWait sets how long Handle waits for a request whose status
// applied but which is not published yet, overriding 10 seconds.
func WithPublishWait(d time.Duration) Option { return func(cfg *config) { cfg.publishWait = d } }

// VerifyAt is Verify as of now.
var VerifyAt = verifyAt
