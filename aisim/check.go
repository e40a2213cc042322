package aisim

import (
	"context"

	"github.com/genpipe/genpipe"
)

// NewCheckService returns the simulated Checking AI: POST /v1/check with a
// genpipe.CheckInput answers a genpipe.CheckVerdict. It fetches the image,
// reads its header first (so an image too large or too costly to decode is
// refused without decoding it), then decodes it fully within the memory
// budget: decoding is what proves the image whole, the same decoder the
// Generative AI will run, and the budget bounds what it holds. It passes PNG
// and JPEG images from MinImageSide to MaxImageSide pixels a side, within
// WithMaxDecodedBytes, that decode cleanly; anything else gets a failing
// verdict with a readable reason, including a link that answers 403 or 404.
// Other fetch failures are a 502 problem, worth retrying.
// Default latency DefaultCheckLatency, capacity DefaultCapacity. An option
// out of its range is an error naming it.
func NewCheckService(opts ...Option) (*Service, error) {
	m := model{name: "check", latency: DefaultCheckLatency, input: func() input { return new(checkInput) }}
	return newService(m, opts)
}

// checkInput is the body of a check call.
type checkInput struct{ genpipe.CheckInput }

func (in *checkInput) requestID() string { return in.RequestID }

func (in *checkInput) validate() error { return checkURL("imageUrl", in.ImageURL) }

func (in *checkInput) run(ctx context.Context, s *Service, wait func() error) (any, error) {
	return s.check(ctx, in.CheckInput, wait)
}

// check judges the image, then waits out the latency before answering.
func (s *Service) check(ctx context.Context, in genpipe.CheckInput, wait func() error) (genpipe.CheckVerdict, error) {
	verdict, err := s.judge(ctx, in.ImageURL)
	if err != nil {
		return verdict, err
	}
	return verdict, wait()
}

// judge decodes the image and gives its memory back at once: the verdict
// needs only its size.
func (s *Service) judge(ctx context.Context, imageURL string) (genpipe.CheckVerdict, error) {
	img, format, c, err := s.loadImage(ctx, imageURL, nil)
	switch {
	case genpipe.ErrorCode(err) == genpipe.EUNPROCESSABLE:
		return genpipe.CheckVerdict{Pass: false, Reason: genpipe.ErrorMessage(err)}, nil
	case err != nil:
		return genpipe.CheckVerdict{}, err
	}
	b := img.Bounds()
	c.release()
	return genpipe.CheckVerdict{Pass: true, Format: format, Width: b.Dx(), Height: b.Dy()}, nil
}
