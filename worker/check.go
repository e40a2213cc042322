package worker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/genpipe/genpipe"
)

// Handle checks the request of e, a submitted event. It returns a
// *genpipe.DeadLetterError for a request that belongs in the dead-letter
// topic (failed for good), and any other error only when the work could
// not be finished (ctx done): such a record must not be committed.
func (c *Check) Handle(ctx context.Context, e genpipe.Event) error {
	if err := c.setStatus(ctx, e.RequestID, genpipe.StatusChecking, nil, ""); err != nil {
		return err
	}
	o, err := c.once(ctx, e.RequestID, e.Replay, func(ctx context.Context, _ genpipe.Claim) (string, int, error) {
		verdict, attempts, err := c.check(ctx, e)
		if err != nil {
			return "", attempts, err
		}
		out, err := json.Marshal(verdict)
		return string(out), attempts, err
	})
	if err != nil {
		return err
	}
	if o.state == genpipe.ClaimFailed {
		return c.fail(ctx, e.RequestID, o)
	}
	var verdict genpipe.CheckVerdict
	if err := json.Unmarshal([]byte(o.output), &verdict); err != nil {
		return fmt.Errorf("check: stored verdict of %s: %w", e.RequestID, err)
	}
	if !verdict.Pass {
		return c.setStatus(ctx, e.RequestID, genpipe.StatusRejected, nil, verdict.Reason)
	}
	checked := genpipe.NewJobEvent(genpipe.EventChecked, e.RequestID, *e.Job, c.now())
	checked.Replay = e.Replay
	return c.publish(ctx, c.topics.Checked, checked)
}

// check asks the Checking AI, with retries.
func (c *Check) check(ctx context.Context, e genpipe.Event) (genpipe.CheckVerdict, int, error) {
	var verdict genpipe.CheckVerdict
	attempts, err := c.callAI(ctx, e.RequestID, func(ctx context.Context) error {
		url, err := c.objects.PresignGet(ctx, genpipe.UploadKey(e.Job.ObjectID), c.urlTTL)
		if err != nil {
			return err
		}
		verdict, err = c.ai.Check(ctx, genpipe.CheckInput{RequestID: e.RequestID, ImageURL: url,
			IdempotencyKey: genpipe.AICallKey(e.RequestID, genpipe.StageCheck, e.Replay)})
		return err
	})
	return verdict, attempts, err
}
