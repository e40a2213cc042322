package worker

import (
	"cmp"
	"context"
	"fmt"

	"github.com/genpipe/genpipe"
)

// Handle generates the slide of e, a checked event; errors as for
// Check.Handle.
func (g *Generate) Handle(ctx context.Context, e genpipe.Event) error {
	style, ok := genpipe.StyleByID(e.Job.Style)
	if !ok {
		reason := fmt.Sprintf("unknown style %q", e.Job.Style)
		if err := g.setStatus(ctx, e, genpipe.StatusFailed, nil, reason); err != nil {
			return err
		}
		return &genpipe.DeadLetterError{Reason: reason}
	}
	announced := g.announce(ctx, e, genpipe.StatusGenerating)
	result := genpipe.ResultKeys(e.RequestID)
	o, err := g.once(ctx, e.RequestID, e.Replay, func(ctx context.Context, c genpipe.Claim) (string, int, error) {
		if c.Takes > 1 && g.written(ctx, result) {
			// The worker that died holding the claim got the slide: it
			// died after the AI answered, before recording it.
			g.logger.Info("taking over a claim whose slide is already written: no AI call", "request", e.RequestID)
			return "", 0, nil
		}
		attempts, err := g.callAI(ctx, e.RequestID, func(ctx context.Context, attempt int) error {
			in, err := g.input(ctx, e, style, result)
			if err != nil {
				return err
			}
			if err := announced(); err != nil { // see stage.announce
				return err
			}
			return g.paid(ctx, e, c, attempt, func(ctx context.Context) error { return g.ai.Generate(ctx, in) })
		})
		return "", attempts, err
	})
	if err := cmp.Or(announced(), err); err != nil {
		return err
	}
	if done, err := g.refused(ctx, e, o); done {
		return err
	}
	if o.state == genpipe.ClaimFailed {
		return g.fail(ctx, e, o)
	}
	result = g.countSlides(ctx, result)
	return g.setStatus(ctx, e, genpipe.StatusDone, &result, "")
}

// written reports whether all of the slide's files are in the object
// store. A PUT is atomic, so a file there is a whole file; any doubt (an
// error) answers no, and the AI is asked again.
func (g *Generate) written(ctx context.Context, result genpipe.Result) bool {
	for _, key := range []string{result.PNGKey, result.PDFKey, result.PPTXKey} {
		if info, err := g.objects.Stat(ctx, key); err != nil || info.Size == 0 {
			return false
		}
	}
	return true
}

// input presigns the image to read and the three files to write.
func (g *Generate) input(ctx context.Context, e genpipe.Event, style genpipe.Style, result genpipe.Result) (genpipe.GenerateInput, error) {
	in := genpipe.GenerateInput{RequestID: e.RequestID, Style: style, Title: e.Job.Title, Description: e.Job.Description,
		IdempotencyKey: genpipe.AICallKey(e.RequestID, genpipe.StageGenerate, e.Replay)}
	var err error
	if in.ImageURL, err = g.presignImage(ctx, e); err != nil {
		return in, err
	}
	for _, out := range []struct {
		key, contentType string
		url              *string
	}{
		{result.PNGKey, genpipe.ContentTypePNG, &in.Outputs.PNG},
		{result.PDFKey, genpipe.ContentTypePDF, &in.Outputs.PDF},
		{result.PPTXKey, genpipe.ContentTypePPTX, &in.Outputs.PPTX},
	} {
		// The size stays open: the AI knows it only once the file is made.
		if *out.url, err = g.objects.PresignPut(ctx, out.key, genpipe.PutHeaders{ContentType: out.contentType}, g.urlTTL); err != nil {
			return in, err
		}
	}
	for n := 2; n <= genpipe.MaxSlides; n++ {
		u, err := g.objects.PresignPut(ctx, genpipe.SlidePNGKey(result.PNGKey, n), genpipe.PutHeaders{ContentType: genpipe.ContentTypePNG}, g.urlTTL)
		if err != nil {
			return in, err
		}
		in.Outputs.MorePNG = append(in.Outputs.MorePNG, u)
	}
	return in, nil
}

// countSlides returns result with the number of slides its deck has: the
// AI writes one PNG a slide, so the first PNG missing past the first ends
// the deck. An error reading the store counts what was seen before it.
func (g *Generate) countSlides(ctx context.Context, result genpipe.Result) genpipe.Result {
	result.Slides = 1
	for n := 2; n <= genpipe.MaxSlides; n++ {
		if info, err := g.objects.Stat(ctx, genpipe.SlidePNGKey(result.PNGKey, n)); err != nil || info.Size == 0 {
			break
		}
		result.Slides = n
	}
	return result
}
