package worker_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Both stages read the image a request names: its write-once upload
// (genpipe.Job.Image), which nothing can overwrite; for a request made from
// an older upload, the copy the API pinned (genpipe.InputKey), never the
// upload, which its URL could still overwrite; for a request accepted
// before inputs were pinned, its owner-less upload (genpipe.LegacyUploadKey).
// Every other object holds something no stage could use, so reading it
// would reject the request or fail the slide.
func TestStagesReadTheRequestsImage(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		for _, tc := range []struct {
			name      string
			writeOnce bool   // the job names its upload (Job.Image)
			read      string // which object holds the image: upload, input or legacy
		}{
			{"write-once upload", true, "upload"},
			{"pinned copy of a legacy upload", false, "input"},
			{"unpinned legacy upload", false, "legacy"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := testenv.New(t)
				handle, _ := simulatedStage(t, stage, env, nil)
				id, objectID := uuid.NewString(), uuid.NewString()
				keys := map[string]string{"upload": genpipe.UploadKey("", objectID), "input": genpipe.InputKey(id),
					"legacy": genpipe.LegacyUploadKey("", objectID)}
				for name, key := range keys {
					data := []byte("not the image of this request")
					if name == tc.read {
						data = pngImage(t, 128, 128)
					} else if name == "input" && tc.read == "legacy" {
						continue // not pinned: no input at all
					}
					if err := env.Objects.Put(testutil.Context(t), key, genpipe.ContentTypePNG, data); err != nil {
						t.Fatal(err)
					}
				}
				job := genpipe.Job{ObjectID: objectID, Style: "minimal", Description: "d"}
				if tc.writeOnce {
					job.Image = keys["upload"]
				}
				in, want := genpipe.EventSubmitted, []genpipe.Status{genpipe.StatusChecking}
				if stage == "generate" {
					in, want = genpipe.EventChecked, []genpipe.Status{genpipe.StatusGenerating, genpipe.StatusDone}
				}
				if err := handle(testutil.Context(t), testutil.JobEvent(in, id, job)); err != nil {
					t.Fatalf("Handle: %v", err)
				}
				if got := statusesOf(t, readAll(t, env, env.Topics.Results)); !slices.Equal(got, want) {
					t.Fatalf("results topic: %v, want %v: the stage did not read the request's image", got, want)
				}
			})
		}
	})
}
