package aisim

import (
	"context"
	"fmt"
	"strconv"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/slide"
)

// NewGenerateService returns the simulated Generative AI: POST /v1/generate
// with a genpipe.GenerateInput fetches the image, renders the slide with
// package slide, waits out the latency, then PUTs the PNG, PDF and PPTX to
// the presigned URLs in Outputs with the content types they were signed for
// (genpipe.ContentTypePNG, ContentTypePDF, ContentTypePPTX). It answers
// 200 GenerateOutput once all three are stored; 400 for a bad input or
// style, 422 for an unusable image, 502 when a fetch or an upload failed.
// Default latency DefaultGenerateLatency, capacity DefaultCapacity. An
// option out of its range is an error naming it.
func NewGenerateService(opts ...Option) (*Service, error) {
	m := model{name: "generate", latency: DefaultGenerateLatency, input: func() input { return new(generateInput) },
		extra: slide.RenderBytes, maxExtra: slide.MaxRenderBytes}
	return newService(m, opts)
}

// GenerateOutput is the generate service's answer: the size of each file
// it stored.
type GenerateOutput struct {
	Outputs struct {
		PNG  FileInfo `json:"png"`
		PDF  FileInfo `json:"pdf"`
		PPTX FileInfo `json:"pptx"`
	} `json:"outputs"`
	// MorePNG are the PNGs of slides 2, 3, ...; Slides counts them all.
	MorePNG []FileInfo `json:"morePng,omitempty"`
	Slides  int        `json:"slides"`
}

// FileInfo describes one stored file.
type FileInfo struct {
	Bytes int `json:"bytes"`
}

// generateInput is the body of a generate call.
type generateInput struct{ genpipe.GenerateInput }

func (in *generateInput) requestID() string { return in.RequestID }

func (in *generateInput) run(ctx context.Context, s *Service, wait func() error) (any, error) {
	return s.generate(ctx, in.GenerateInput, wait)
}

func (in *generateInput) validate() error {
	for _, u := range []struct{ field, value string }{
		{"imageUrl", in.ImageURL},
		{"outputs.png", in.Outputs.PNG},
		{"outputs.pdf", in.Outputs.PDF},
		{"outputs.pptx", in.Outputs.PPTX},
	} {
		if err := checkURL(u.field, u.value); err != nil {
			return err
		}
	}
	return validateStyle(in.Style)
}

// validateStyle checks what a style needs before a slot is spent on it.
// slide.Render checks the rest (font, image side) and reports EINVALID too.
func validateStyle(st genpipe.Style) error {
	if st.ID == "" {
		return genpipe.Errorf(genpipe.EINVALID, "style.id is required")
	}
	for _, c := range []struct{ field, value string }{
		{"backgroundTop", st.BackgroundTop},
		{"backgroundBottom", st.BackgroundBottom},
		{"titleColor", st.TitleColor},
		{"textColor", st.TextColor},
		{"accentColor", st.AccentColor},
	} {
		if !isHexColor(c.value) {
			return genpipe.Errorf(genpipe.EINVALID, "style %q: %s %q is not a #rrggbb color", st.ID, c.field, c.value)
		}
	}
	return nil
}

func isHexColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	_, err := strconv.ParseUint(s[1:], 16, 32)
	return err == nil
}

// generate renders the slide, waits out the latency, then uploads the files:
// a call abandoned during the latency writes nothing. Its memory claim
// covers the image and the render, then only the files until they are
// uploaded. The render waits for a turn (WithRenders) holding the claim.
func (s *Service) generate(ctx context.Context, in genpipe.GenerateInput, wait func() error) (GenerateOutput, error) {
	img, _, c, err := s.loadImage(ctx, in.ImageURL, slide.RenderBytes)
	if err != nil {
		return GenerateOutput{}, err
	}
	defer c.release()
	files, err := s.render(ctx, img, in)
	if err != nil {
		return GenerateOutput{}, fmt.Errorf("aisim: render: %w", err)
	}
	c.shrink(int64(len(files.PNG) + len(files.PDF) + len(files.PPTX)))
	if err := wait(); err != nil {
		return GenerateOutput{}, err
	}
	return s.upload(ctx, in.Outputs, files)
}

// upload PUTs each file with the content type its URL was signed for.
func (s *Service) upload(ctx context.Context, to genpipe.OutputTargets, files slide.Files) (GenerateOutput, error) {
	var out GenerateOutput
	for _, f := range []struct {
		what, url, contentType string
		data                   []byte
		info                   *FileInfo
	}{
		{"png", to.PNG, genpipe.ContentTypePNG, files.PNG, &out.Outputs.PNG},
		{"pdf", to.PDF, genpipe.ContentTypePDF, files.PDF, &out.Outputs.PDF},
		{"pptx", to.PPTX, genpipe.ContentTypePPTX, files.PPTX, &out.Outputs.PPTX},
	} {
		if err := s.put(ctx, f.what, f.url, f.contentType, f.data); err != nil {
			return out, err
		}
		f.info.Bytes = len(f.data)
	}
	if len(files.MorePNG) > len(to.MorePNG) {
		return out, genpipe.Errorf(genpipe.EINVALID, "the deck has %d slides and outputs.morePng %d URLs past the first", 1+len(files.MorePNG), len(to.MorePNG))
	}
	for i, png := range files.MorePNG {
		if err := s.put(ctx, fmt.Sprintf("png of slide %d", i+2), to.MorePNG[i], genpipe.ContentTypePNG, png); err != nil {
			return out, err
		}
		out.MorePNG = append(out.MorePNG, FileInfo{Bytes: len(png)})
	}
	out.Slides = 1 + len(files.MorePNG)
	return out, nil
}
