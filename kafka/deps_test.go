package kafka_test

import (
	"testing"

	"github.com/genpipe/genpipe/internal/testutil"
)

// The client does not compile the embedded broker in: a process that talks
// to a real cluster carries no kfake.
func TestNoBrokerInClient(t *testing.T) {
	testutil.ForbidDeps(t, "github.com/genpipe/genpipe/kafka",
		"github.com/twmb/franz-go/pkg/kfake", "github.com/genpipe/genpipe/broker")
}
