package worker

import (
	"context"
	"fmt"

	"github.com/genpipe/genpipe"
)

// Generate is the generate stage: for each checked request it asks the
// Generative AI to render the slide into the object store, then reports it
// done with the files' keys.
type Generate struct {
	stage
	ai genpipe.Generator
}

// NewGenerate returns the generate stage.
func NewGenerate(ai genpipe.Generator, objects genpipe.ObjectStore, publisher genpipe.Publisher, topics genpipe.Topics, opts ...Option) *Generate {
	return &Generate{ai: ai, stage: stage{config: newConfig(opts), name: "generate", objects: objects, publisher: publisher, topics: topics}}
}

// Handle processes one record of the checked topic; errors as for Check.Handle.
func (g *Generate) Handle(ctx context.Context, value []byte) error {
	e, ok := g.decode(value, genpipe.EventChecked)
	if !ok {
		return nil
	}
	style, ok := genpipe.StyleByID(e.Job.Style)
	if !ok {
		return g.setStatus(ctx, e.RequestID, genpipe.StatusFailed, nil, fmt.Sprintf("unknown style %q", e.Job.Style))
	}
	if err := g.setStatus(ctx, e.RequestID, genpipe.StatusGenerating, nil, ""); err != nil {
		return err
	}
	result := genpipe.ResultKeys(e.RequestID)
	attempts, err := g.callAI(ctx, e.RequestID, func(ctx context.Context) error {
		in, err := g.input(ctx, e, style, result)
		if err != nil {
			return err
		}
		return g.ai.Generate(ctx, in)
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return g.setStatus(ctx, e.RequestID, genpipe.StatusFailed, nil, failure("generating the slide", attempts, err))
	}
	return g.setStatus(ctx, e.RequestID, genpipe.StatusDone, &result, "")
}

// input presigns the image to read and the three files to write.
func (g *Generate) input(ctx context.Context, e genpipe.Event, style genpipe.Style, result genpipe.Result) (genpipe.GenerateInput, error) {
	in := genpipe.GenerateInput{RequestID: e.RequestID, Style: style, Title: e.Job.Title, Description: e.Job.Description}
	var err error
	if in.ImageURL, err = g.objects.PresignGet(ctx, genpipe.UploadKey(e.Job.ObjectID), g.urlTTL); err != nil {
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
		if *out.url, err = g.objects.PresignPut(ctx, out.key, out.contentType, g.urlTTL); err != nil {
			return in, err
		}
	}
	return in, nil
}
