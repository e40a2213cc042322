package genpipe

import (
	"context"
	"fmt"
)

// The AI services are slow and capacity-limited HTTP services. Workers call
// them through these interfaces (package aiclient speaks the HTTP contract;
// package aisim simulates the services). Images and slides travel as
// presigned URLs, so an AI service needs no object-store credentials.

// CheckInput asks the Checking AI about one uploaded image.
type CheckInput struct {
	RequestID string `json:"requestId"`
	ImageURL  string `json:"imageUrl"` // presigned GET of the upload
	// IdempotencyKey names the call (sent as the Idempotency-Key header):
	// a service that keeps answers by key answers a repeat without doing,
	// or charging for, the work again. See AICallKey.
	IdempotencyKey string `json:"-"`
}

// AICallKey is the idempotency key of a stage's AI call for a request: the
// same for every worker that makes it, new for each operator replay.
func AICallKey(requestID string, stage Stage, replay int) string {
	return fmt.Sprintf("%s/%s/%d", requestID, stage, replay)
}

// CheckVerdict is the Checking AI's answer.
type CheckVerdict struct {
	Pass   bool   `json:"pass"`
	Reason string `json:"reason,omitempty"` // why not, when Pass is false
	Format string `json:"format,omitempty"` // "png" or "jpeg" when decodable
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
}

// Checker is the Checking AI.
type Checker interface {
	Check(ctx context.Context, in CheckInput) (CheckVerdict, error)
}

// GenerateInput asks the Generative AI for one slide.
type GenerateInput struct {
	RequestID   string        `json:"requestId"`
	ImageURL    string        `json:"imageUrl"` // presigned GET of the upload
	Style       Style         `json:"style"`
	Title       string        `json:"title"`
	Description string        `json:"description"`
	Outputs     OutputTargets `json:"outputs"`
	// IdempotencyKey: as CheckInput.IdempotencyKey.
	IdempotencyKey string `json:"-"`
}

// OutputTargets are presigned PUT URLs the Generative AI writes the slide to.
type OutputTargets struct {
	PNG  string `json:"png"`
	PDF  string `json:"pdf"`
	PPTX string `json:"pptx"`
	// MorePNG are the PUT URLs of the PNGs of slides 2, 3, ... in order,
	// MaxSlides - 1 of them: a deck writes as many as it has slides past
	// the first.
	MorePNG []string `json:"morePng,omitempty"`
}

// Generator is the Generative AI. It returns once all outputs are written.
type Generator interface {
	Generate(ctx context.Context, in GenerateInput) error
}

// Content types of the slide files.
const (
	ContentTypePNG  = "image/png"
	ContentTypeJPEG = "image/jpeg"
	ContentTypePDF  = "application/pdf"
	ContentTypePPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
)

// The sides an image may have, in pixels: the Checking AI rejects a smaller
// or larger one. They are here, not only in the AI, so that the web page
// checks a picked image against the same figures before uploading it.
const (
	MinImageSide = 64
	MaxImageSide = 8000
)

// Errors from Checker and Generator carry codes: ETOOMANY when the service
// is over capacity (HTTP 429; retry later), EUNAVAILABLE when it failed or
// timed out (5xx, network; retry), EINVALID when it refused the input (4xx;
// do not retry).
