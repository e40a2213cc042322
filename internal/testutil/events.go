package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

// Context returns a context that ends when the test does or after 20
// seconds, whichever comes first: long enough for any one step of a test
// against an embedded broker, short enough that a hang fails the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// JobEvent returns a submitted or checked event of request id, stamped now.
func JobEvent(typ genpipe.EventType, id string, job genpipe.Job) genpipe.Event {
	return genpipe.NewJobEvent(typ, id, job, time.Now())
}

// StatusEvent returns a status event of request id, stamped now.
func StatusEvent(id string, status genpipe.Status, result *genpipe.Result, reason string) genpipe.Event {
	return genpipe.NewStatusEvent(genpipe.StatusChange{RequestID: id, Status: status, Result: result, Error: reason, At: time.Now()})
}

// Encode returns the record value of e, failing the test if e is not valid.
func Encode(t testing.TB, e genpipe.Event) []byte {
	t.Helper()
	v, err := genpipe.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
