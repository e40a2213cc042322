package aisim

import (
	"context"
	"net/http"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// NewCheckService returns the simulated Checking AI: POST /v1/check with a
// genpipe.CheckInput answers a genpipe.CheckVerdict. It fetches the image,
// reads its header first (so a huge image is refused without decoding it),
// then decodes it fully. It passes PNG and JPEG images from MinImageSide to
// MaxImageSide pixels a side that decode cleanly; anything else gets a
// failing verdict with a readable reason, including a link that answers 403
// or 404. Other fetch failures are a 502 problem, worth retrying.
// Default latency DefaultCheckLatency, capacity DefaultCapacity. An option
// out of its range is an error naming it.
func NewCheckService(opts ...Option) (*Service, error) {
	m := model{name: "check", route: "POST /v1/check", parse: parseCheck}
	return newService(m, DefaultCheckLatency, opts)
}

func parseCheck(s *Service, w http.ResponseWriter, r *http.Request) (call, error) {
	var in genpipe.CheckInput
	if err := httpjson.Decode(w, r, MaxBodyBytes, &in); err != nil {
		return call{}, err
	}
	if err := checkRequestID(in.RequestID); err != nil {
		return call{}, err
	}
	if err := checkURL("imageUrl", in.ImageURL); err != nil {
		return call{}, err
	}
	run := func(ctx context.Context, wait func() error) (any, error) { return s.check(ctx, in, wait) }
	return call{requestID: in.RequestID, run: run}, nil
}

// check judges the image, then waits out the latency before answering.
func (s *Service) check(ctx context.Context, in genpipe.CheckInput, wait func() error) (genpipe.CheckVerdict, error) {
	verdict, err := s.judge(ctx, in.ImageURL)
	if err != nil {
		return verdict, err
	}
	return verdict, wait()
}

func (s *Service) judge(ctx context.Context, imageURL string) (genpipe.CheckVerdict, error) {
	img, format, err := s.fetchImage(ctx, imageURL)
	switch {
	case genpipe.ErrorCode(err) == genpipe.EUNPROCESSABLE:
		return genpipe.CheckVerdict{Pass: false, Reason: genpipe.ErrorMessage(err)}, nil
	case err != nil:
		return genpipe.CheckVerdict{}, err
	}
	b := img.Bounds()
	return genpipe.CheckVerdict{Pass: true, Format: format, Width: b.Dx(), Height: b.Dy()}, nil
}
