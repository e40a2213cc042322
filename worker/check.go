package worker

import (
	"context"

	"github.com/genpipe/genpipe"
)

// Check is the check stage: for each submitted request it asks the
// Checking AI about the uploaded image, then forwards the request to the
// checked topic or reports it rejected.
type Check struct {
	stage
	ai genpipe.Checker
}

// NewCheck returns the check stage.
func NewCheck(ai genpipe.Checker, objects genpipe.ObjectStore, publisher genpipe.Publisher, topics genpipe.Topics, opts ...Option) *Check {
	return &Check{ai: ai, stage: stage{config: newConfig(opts), name: "check", objects: objects, publisher: publisher, topics: topics}}
}

// Handle processes one record of the requests topic. It returns an error
// only when the record's work could not be finished (ctx done, or Kafka
// away until then): such a record must not be committed.
func (c *Check) Handle(ctx context.Context, value []byte) error {
	e, ok := c.decode(value, genpipe.EventSubmitted)
	if !ok {
		return nil
	}
	if err := c.setStatus(ctx, e.RequestID, genpipe.StatusChecking, nil, ""); err != nil {
		return err
	}
	var verdict genpipe.CheckVerdict
	attempts, err := c.callAI(ctx, e.RequestID, func(ctx context.Context) error {
		url, err := c.objects.PresignGet(ctx, genpipe.UploadKey(e.Job.ObjectID), c.urlTTL)
		if err != nil {
			return err
		}
		verdict, err = c.ai.Check(ctx, genpipe.CheckInput{RequestID: e.RequestID, ImageURL: url})
		return err
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return c.setStatus(ctx, e.RequestID, genpipe.StatusFailed, nil, failure("checking the image", attempts, err))
	case !verdict.Pass:
		return c.setStatus(ctx, e.RequestID, genpipe.StatusRejected, nil, verdict.Reason)
	}
	return c.publish(ctx, c.topics.Checked, genpipe.NewJobEvent(genpipe.EventChecked, e.RequestID, *e.Job, c.now()))
}
