package s3_test

import (
	"testing"

	"github.com/genpipe/genpipe/internal/testutil"
)

// The client does not compile the embedded server in: a process that talks
// to a real object store carries no versitygw.
func TestNoServerInClient(t *testing.T) {
	testutil.ForbidDeps(t, "github.com/genpipe/genpipe/s3",
		"github.com/versity/versitygw", "github.com/genpipe/genpipe/objectstore")
}
