package worker_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Both stages read the image the API pinned for the request
// (genpipe.InputKey), never the upload, which its URL may still overwrite;
// a request accepted before inputs were pinned has none and is read from
// its upload (every other test of this package makes such requests).
func TestStagesReadThePinnedInput(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		env := testenv.New(t)
		handle, _ := simulatedStage(t, stage, env, nil)
		id := uuid.NewString()
		// The upload was overwritten after submission with something no
		// stage could use; the pinned input is the image submitted.
		job := genpipe.Job{ObjectID: upload(t, "text/plain", []byte("swapped after submission")), Style: "minimal", Description: "d"}
		if err := env.Objects.Put(testutil.Context(t), genpipe.InputKey(id), genpipe.ContentTypePNG, pngImage(t, 128, 128)); err != nil {
			t.Fatal(err)
		}
		in, want := genpipe.EventSubmitted, []genpipe.Status{genpipe.StatusChecking}
		if stage == "generate" {
			in, want = genpipe.EventChecked, []genpipe.Status{genpipe.StatusGenerating, genpipe.StatusDone}
		}
		if err := handle(testutil.Context(t), testutil.JobEvent(in, id, job)); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if got := statusesOf(t, readAll(t, env, env.Topics.Results)); !slices.Equal(got, want) {
			t.Fatalf("results topic: %v, want %v: the stage did not read the pinned input", got, want)
		}
	})
}
