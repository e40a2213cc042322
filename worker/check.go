package worker

import (
	"cmp"
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
	announced := c.announce(ctx, e, genpipe.StatusChecking)
	o, err := c.once(ctx, e.RequestID, e.Replay, func(ctx context.Context, cl genpipe.Claim) (string, int, error) {
		verdict, attempts, err := c.check(ctx, e, cl, announced)
		if err != nil {
			return "", attempts, err
		}
		out, err := json.Marshal(verdict)
		return string(out), attempts, err
	})
	if err := cmp.Or(announced(), err); err != nil {
		return err
	}
	if done, err := c.refused(ctx, e, o); done {
		return err
	}
	if o.state == genpipe.ClaimFailed {
		return c.fail(ctx, e, o)
	}
	var verdict genpipe.CheckVerdict
	if err := json.Unmarshal([]byte(o.output), &verdict); err != nil {
		return fmt.Errorf("check: stored verdict of %s: %w", e.RequestID, err)
	}
	if !verdict.Pass {
		return c.setStatus(ctx, e, genpipe.StatusRejected, nil, verdict.Reason)
	}
	checked := genpipe.NewJobEvent(genpipe.EventChecked, e.RequestID, *e.Job, c.now())
	checked.Replay, checked.Share, checked.StartBy = e.Replay, e.Share, e.StartBy
	return c.publish(ctx, c.topics.Checked, checked)
}

// check asks the Checking AI, with retries, once announced (see
// stage.announce) says the request's checking status is out.
func (c *Check) check(ctx context.Context, e genpipe.Event, cl genpipe.Claim, announced func() error) (genpipe.CheckVerdict, int, error) {
	var verdict genpipe.CheckVerdict
	attempts, err := c.callAI(ctx, e.RequestID, func(ctx context.Context, attempt int) error {
		url, err := c.presignImage(ctx, e)
		if err != nil {
			return err
		}
		if err := announced(); err != nil {
			return err
		}
		return c.paid(ctx, e, cl, attempt, func(ctx context.Context) (err error) {
			verdict, err = c.ai.Check(ctx, genpipe.CheckInput{RequestID: e.RequestID, ImageURL: url,
				IdempotencyKey: genpipe.AICallKey(e.RequestID, genpipe.StageCheck, e.Replay)})
			return err
		})
	})
	return verdict, attempts, err
}

// presignImage returns a GET URL of the image e's request is made from,
// for the AI: its write-once upload (genpipe.Job.Image), or the copy of
// an older upload the API made when it accepted the request
// (genpipe.InputKey). A request accepted before the API pinned inputs has
// neither, and is read from its upload as it was then: LegacyUploadKey
// without an owner is where that API kept every upload. Store errors are
// EUNAVAILABLE (retried with the AI call) or internal.
func (s *stage) presignImage(ctx context.Context, e genpipe.Event) (string, error) {
	if e.Job.Image != "" {
		return s.objects.PresignGet(ctx, e.Job.Image, s.urlTTL)
	}
	key := genpipe.InputKey(e.RequestID)
	_, err := s.objects.Stat(ctx, key)
	switch genpipe.ErrorCode(err) {
	case "":
	case genpipe.ENOTFOUND:
		key = genpipe.LegacyUploadKey("", e.Job.ObjectID)
		s.logger.Info("request accepted before inputs were pinned: reading its upload", "stage", s.name, "request", e.RequestID)
	default:
		return "", fmt.Errorf("%s: find the input of %s: %w", s.name, e.RequestID, err)
	}
	return s.objects.PresignGet(ctx, key, s.urlTTL)
}
