package genpipe

import (
	"context"
	"fmt"
	"time"
)

// RequestView is the public JSON of a request: what GET /v1/requests/{id}
// returns, what each SSE event carries and what a webhook POSTs.
type RequestView struct {
	ID          string      `json:"id"`
	Status      Status      `json:"status"`
	Style       string      `json:"style"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Result      *ResultView `json:"result,omitempty"`
	Error       string      `json:"error,omitempty"`
	CreatedAt   time.Time   `json:"createdAt"`
	UpdatedAt   time.Time   `json:"updatedAt"`
}

// ResultView holds presigned GET links to the finished slide.
type ResultView struct {
	PNGURL    string    `json:"pngUrl"`
	PDFURL    string    `json:"pdfUrl"`
	PPTXURL   string    `json:"pptxUrl"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// NewRequestView renders r for a client, presigning result links valid for ttl.
func NewRequestView(ctx context.Context, r *Request, objects ObjectStore, ttl time.Duration) (RequestView, error) {
	v := RequestView{ID: r.ID, Status: r.Status, Style: r.Style, Title: r.Title, Description: r.Description,
		Error: r.Error, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.Status == StatusDone && r.Result != nil {
		result, err := NewResultView(ctx, *r.Result, objects, ttl)
		if err != nil {
			return RequestView{}, fmt.Errorf("view of request %s: %w", r.ID, err)
		}
		v.Result = &result
	}
	return v, nil
}

// NewResultView presigns GET links to a result's files, valid for ttl.
func NewResultView(ctx context.Context, res Result, objects ObjectStore, ttl time.Duration) (ResultView, error) {
	var v ResultView
	for _, f := range []struct {
		key string
		url *string
	}{{res.PNGKey, &v.PNGURL}, {res.PDFKey, &v.PDFURL}, {res.PPTXKey, &v.PPTXURL}} {
		u, err := objects.PresignGet(ctx, f.key, ttl)
		if err != nil {
			return ResultView{}, fmt.Errorf("presign %s: %w", f.key, err)
		}
		*f.url = u
	}
	v.ExpiresAt = time.Now().Add(ttl).UTC()
	return v, nil
}
