package genpipe

import (
	"context"
	"fmt"
	"time"
)

// Result links are presigned URLs: anyone holding one reads the slide
// until it expires, and a new one is presigned for each answer.
const (
	// DefaultResultTTL is how long the result links in an answer, an SSE
	// event or a webhook stay valid, unless configured: the API and the
	// notifier both start from it, so every channel hands out links of one
	// lifetime.
	DefaultResultTTL = time.Hour
	// MaxPresignTTL is the longest a presigned URL may live (SigV4 allows
	// seven days).
	MaxPresignTTL = 7 * 24 * time.Hour
)

// RequestView is the public JSON of a request: what GET /v1/requests/{id}
// returns, what each SSE event carries and what a webhook POSTs.
type RequestView struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Tenant is who the request's API key belongs to (DefaultTenant
	// without keys), Priority what the request asked for.
	Tenant      string       `json:"tenant"`
	Priority    Priority     `json:"priority"`
	Style       string       `json:"style"`
	Title       string       `json:"title"`
	Description string       `json:"description"`
	Result      *ResultView  `json:"result,omitempty"`
	Error       string       `json:"error,omitempty"`
	Webhook     *WebhookView `json:"webhook,omitempty"`
	// StartBy is the request's deadline, when it has one.
	StartBy time.Time `json:"startBy,omitzero"`
	// EstimatedStartAt and EstimatedDoneAt are, while the request waits,
	// when its next AI call is predicted to start and its last to end:
	// from the work ahead of it in the stage's schedule and the stages'
	// measured throughput. Zero (left out) once it runs or ended.
	EstimatedStartAt time.Time `json:"estimatedStartAt,omitzero"`
	EstimatedDoneAt  time.Time `json:"estimatedDoneAt,omitzero"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

// WebhookView says where the webhook of a request's terminal status
// stands: pending (being sent, or retried after a failure LastError
// names), delivered, abandoned (failed for the whole retry window) or
// failed (refused in a way retrying cannot fix: a 4xx, a redirect, an
// address that is not public; not retried).
type WebhookView struct {
	State     WebhookState `json:"state"`
	Attempts  int          `json:"attempts"`
	LastError string       `json:"lastError,omitempty"`
}

// SubmitBody is the JSON body of POST /v1/requests, as it travels: the
// API decodes it, the client package and the intake bench's produce-only
// server send and read it. Optional fields are left out when empty.
type SubmitBody struct {
	ObjectID    string `json:"objectId"`
	Style       string `json:"style"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description"`
	WebhookURL  string `json:"webhookUrl,omitempty"`
	// Priority is "high", "normal" or "low"; empty is DefaultPriority.
	// Above the tenant's MaxPriority is a 403.
	Priority string `json:"priority,omitempty"`
	// StartBy (an RFC 3339 time) or MaxWaitSeconds (from now) is the
	// latest its AI calls may start, else it ends expired.
	StartBy        string `json:"startBy,omitempty"`
	MaxWaitSeconds *int64 `json:"maxWaitSeconds,omitempty"`
}

// Accepted is the 202 answer of POST /v1/requests: the request is stored
// and durably queued.
type Accepted struct {
	ID       string    `json:"id"`
	Status   Status    `json:"status"`
	Tenant   string    `json:"tenant"`
	Priority Priority  `json:"priority"`
	StartBy  time.Time `json:"startBy,omitzero"`
	Message  string    `json:"message"`
	// When its first AI call should start and its last end, predicted from
	// the work ahead of it; left out without an estimate.
	EstimatedStartAt time.Time `json:"estimatedStartAt,omitzero"`
	EstimatedDoneAt  time.Time `json:"estimatedDoneAt,omitzero"`
}

// StreamEvent is the data of one event of GET /v1/requests/{id}/events:
// one status change of the request, as the API writes it and the client
// package reads it.
type StreamEvent struct {
	RequestID string      `json:"id"`
	Status    Status      `json:"status"`
	Tenant    string      `json:"tenant"`
	Priority  Priority    `json:"priority"`
	Result    *ResultView `json:"result,omitempty"` // links to the files, on done
	Error     string      `json:"error,omitempty"`  // why it was rejected, failed or expired
	At        time.Time   `json:"at"`
}

// ResultView holds presigned GET links to the finished slide.
type ResultView struct {
	PNGURL string `json:"pngUrl"` // the first slide's
	// PNGURLs are every slide's PNG, the first PNGURL: a long description
	// continues on further slides (as the PDF's pages and the PPTX's
	// slides do).
	PNGURLs   []string  `json:"pngUrls"`
	PDFURL    string    `json:"pdfUrl"`
	PPTXURL   string    `json:"pptxUrl"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// NewRequestView renders r for a client, presigning result links valid for ttl.
func NewRequestView(ctx context.Context, r *Request, objects ObjectStore, ttl time.Duration) (RequestView, error) {
	share := r.Share.Normalized()
	v := RequestView{ID: r.ID, Status: r.Status, Tenant: share.Tenant, Priority: share.Priority, Style: r.Style,
		Title: r.Title, Description: r.Description, Error: r.Error, StartBy: r.StartBy.UTC(), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if d := r.Webhook; d != nil {
		v.Webhook = &WebhookView{State: d.State, Attempts: d.Attempts, LastError: d.LastError}
	}
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
	v.PNGURLs = []string{v.PNGURL}
	for _, key := range res.PNGKeys()[1:] {
		u, err := objects.PresignGet(ctx, key, ttl)
		if err != nil {
			return ResultView{}, fmt.Errorf("presign %s: %w", key, err)
		}
		v.PNGURLs = append(v.PNGURLs, u)
	}
	v.ExpiresAt = time.Now().Add(ttl).UTC()
	return v, nil
}
