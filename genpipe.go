// Package genpipe holds the domain of genpipe, an asynchronous generative-AI
// pipeline on Kafka: the request a user makes, its status, the events that
// carry it through the stages, the slide styles, and the interfaces of the
// parts behind it (status store, object store, AI services, event publisher).
//
// Each dependency has its own package that implements these interfaces
// (kafka, s3, sqlstore, aiclient, ...), and cmd/genpipe is the only place that
// wires them together. Reading the tree tells you the architecture:
//
//	client ─▶ api ─▶ topic requests ─▶ worker(check) ─▶ Checking AI
//	                 topic checked  ─▶ worker(generate) ─▶ Generative AI ─▶ object store
//	                 topic results  ─▶ notifier ─▶ status store, SSE, webhooks
package genpipe

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Request is one user's ask for a slide, as the status store keeps it.
type Request struct {
	ID             string // a UUIDv7 (time-ordered), also the Kafka key of every event about it
	Job                   // what to make
	WebhookURL     string // where to POST status messages; empty for none
	IdempotencyKey string // the client's Idempotency-Key header, unique per Owner; empty for none
	Owner          string // who may read it: hex SHA-256 of the API key that made it (never the key); "" without keys
	Status         Status
	Result         *Result // set when Status is done
	Error          string  // a readable reason when Status is rejected or failed
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Share is the tenant of the API key that made it, the priority it
	// asked for, and the tenant's weight then: every event about the
	// request carries it (see Submitter).
	Share
	// StartBy is the latest time an AI call of the request may start; zero
	// for no deadline. A request whose next call has not started by then
	// ends expired, without calling the AI.
	StartBy time.Time
	// Webhook is the delivery of the webhook of its terminal status, once
	// queued (see WebhookOutbox): where it stands and why it failed. Nil
	// without a WebhookURL, or before the request ends.
	Webhook *WebhookDelivery
}

// Job is what the user asked for. It travels inside the events, so a worker
// never needs to read the status store to do its work.
type Job struct {
	ObjectID    string `json:"objectId"` // the uploaded image, see UploadKey
	Style       string `json:"style"`    // a Style.ID
	Title       string `json:"title"`
	Description string `json:"description"`
	// Image is the object key the stages read the image from when it is
	// the upload itself (UploadKey), which no one can write twice. Empty
	// when the API copied the upload to InputKey instead, as it does for
	// uploads made before upload URLs were write-once.
	Image string `json:"image,omitempty"`
}

// Result names the finished slide's files in the object store. Clients get
// presigned GET URLs for them, never the keys.
type Result struct {
	PNGKey  string `json:"pngKey"`
	PDFKey  string `json:"pdfKey"`
	PPTXKey string `json:"pptxKey"`
	// Slides is how many slides the deck has: text too long for one
	// continues on further ones (more PDF pages, PPTX slides and PNGs, see
	// PNGKeys). 0 counts as 1, as results from before decks were stored.
	Slides int `json:"slides,omitempty"`
}

// MaxSlides is the most slides a deck has (see Result.Slides).
const MaxSlides = 8

// PNGKeys are the object keys of the deck's PNGs, one a slide, the first
// PNGKey.
func (r Result) PNGKeys() []string {
	keys := []string{r.PNGKey}
	for n := 2; n <= min(r.Slides, MaxSlides); n++ {
		keys = append(keys, SlidePNGKey(r.PNGKey, n))
	}
	return keys
}

// SlidePNGKey is the object key of the deck's n-th PNG (n from 2) beside its
// first, firstPNG: slides/<id>/slide.png, then slide.2.png, slide.3.png, ....
func SlidePNGKey(firstPNG string, n int) string {
	return strings.TrimSuffix(firstPNG, ".png") + "." + strconv.Itoa(n) + ".png"
}

// UploadKey is the object key of an upload: objectID in the space of the
// owner that asked for its upload URL (Request.Owner), so that an objectId
// names nothing for another API key; images/<objectID> without API keys.
//
// Upload URLs are write-once (PutHeaders.WriteOnce): the store refuses a
// PUT to a key that holds an object, so once uploaded the image stays
// byte for byte what it was, and the stages read it where it is
// (Job.Image). The image a request was checked on is the image it is
// generated from, whatever the client PUTs afterwards.
func UploadKey(owner, objectID string) string {
	if owner == "" {
		return "images/" + objectID
	}
	return "images/" + owner + "/" + objectID
}

// LegacyUploadKey is where uploads were kept before upload URLs were
// write-once: a URL issued then may still overwrite its object until it
// expires, so the API copies such an upload to InputKey before it accepts
// a request made from it. Without an owner it is also where genpipe kept
// every upload before uploads had owners.
func LegacyUploadKey(owner, objectID string) string {
	if owner == "" {
		return "uploads/" + objectID
	}
	return "uploads/" + owner + "/" + objectID
}

// InputKey is the object key of the copy of a legacy upload
// (LegacyUploadKey) that a request is made from: the API copies the
// upload there when it accepts the request, before storing or queueing
// it, so that nothing PUT to the upload's URL afterwards reaches the
// request.
func InputKey(requestID string) string { return "inputs/" + requestID }

// ResultKeys are the object keys of a request's finished slide.
func ResultKeys(requestID string) Result {
	prefix := "slides/" + requestID + "/slide."
	return Result{PNGKey: prefix + "png", PDFKey: prefix + "pdf", PPTXKey: prefix + "pptx"}
}

// StatusChange is one step of a request's life. Every change is an event on
// the results topic and a row of the request's history.
type StatusChange struct {
	RequestID string    `json:"requestId"`
	Status    Status    `json:"status"`
	Result    *Result   `json:"result,omitempty"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
}

// The status database plays three roles, one interface each, so that a
// part's constructor shows which it uses: the API keeps requests
// (RequestStore), the notifier advances them and sends their webhooks
// (RequestStore, WebhookOutbox), the workers claim AI calls (ClaimStore).
// Package sqlstore implements all three on SQLite and PostgreSQL; package
// storetest is the suite every implementation passes.

// RequestStore keeps the requests and their status history: the source of
// truth for GET, SSE backfill and webhooks.
type RequestStore interface {
	// CreateRequest stores r in status received, not yet published. When a
	// request with the same Owner and non-empty IdempotencyKey exists, it
	// returns that one and created=false instead.
	CreateRequest(ctx context.Context, r *Request) (stored *Request, created bool, err error)
	// CreateClaimed is CreateRequest that, when it creates the request,
	// also takes its publish claim (see ClaimPublish) for owner r.ID and
	// lease in the same write, so that a new submission writes once before
	// it publishes. For an existing request with r's key it takes nothing
	// (created=false): the caller claims as any retry does.
	CreateClaimed(ctx context.Context, r *Request, lease time.Duration) (stored *Request, created bool, err error)
	// ClaimPublish takes, for lease, the right to publish the first event
	// of the stored request id, so that of concurrent submissions with one
	// Idempotency-Key exactly one publishes. Across every process sharing
	// the store, at most one caller holds it at a time: the caller that
	// gets it sees PublishClaimed, others PublishHeld until its holder
	// calls MarkPublished (then Published) or ReleasePublish, or its lease
	// ends unpublished (its holder died): then the next caller gets it.
	// owner names the caller, unique per call. The lease is measured on
	// the store's clock. An unknown request is an ENOTFOUND error; a lease
	// under a millisecond or an empty owner is an EINVALID one.
	ClaimPublish(ctx context.Context, id, owner string, lease time.Duration) (PublishState, error)
	// ReleasePublish gives back owner's claim on publishing request id,
	// after a publish that failed, so that a retry need not wait for the
	// lease to end. A claim owner does not hold is left as it is.
	ReleasePublish(ctx context.Context, id, owner string) error
	// MarkPublished records that the request's first event is durably in
	// Kafka. Until then Request reports ENOTFOUND: the client got no 202.
	MarkPublished(ctx context.Context, id string) error
	// Request returns a published request, with its webhook's delivery
	// once queued, or an ENOTFOUND error.
	Request(ctx context.Context, id string) (*Request, error)
	// ApplyStatus moves a request forward. Changes that do not advance it
	// (a redelivered or out-of-order event) are ignored: applied=false.
	ApplyStatus(ctx context.Context, c StatusChange) (applied bool, err error)
	// History returns the request's status changes, oldest first, starting
	// with received.
	History(ctx context.Context, id string) ([]StatusChange, error)
	// Backlog counts the published requests still in status received:
	// accepted, not yet started. The API refuses new requests above a bound.
	Backlog(ctx context.Context) (int, error)
}

// PublishState is where the first event of a stored request stands; see
// RequestStore.ClaimPublish.
type PublishState string

const (
	// PublishClaimed: the caller holds the claim: it publishes, then calls
	// MarkPublished (or ReleasePublish when publishing failed).
	PublishClaimed PublishState = "claimed"
	// PublishHeld: another caller holds the claim and its lease runs:
	// wait, and claim again.
	PublishHeld PublishState = "held"
	// Published: the event is in Kafka; nothing is left to publish.
	Published PublishState = "published"
)

// WebhookOutbox keeps the webhook deliveries still to make, so that a
// crash never loses one and a failing receiver never holds up the topic.
type WebhookOutbox interface {
	// EnqueueWebhook adds a delivery unless one for the same request and
	// status exists, so a redelivered event never sends twice.
	EnqueueWebhook(ctx context.Context, d WebhookDelivery) error
	// ClaimDueWebhooks claims up to limit pending deliveries due at now,
	// the longest overdue first, and returns them. In the same atomic step
	// it moves their NextAttemptAt to now+lease, so no other claimer gets
	// them until the lease ends: the claimer records each attempt's outcome
	// with UpdateWebhook before then, and if it dies the deliveries fall
	// due again when the lease ends.
	ClaimDueWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookDelivery, error)
	// UpdateWebhook records the outcome of an attempt (State, Attempts,
	// NextAttemptAt, LastError); a claimer that gives a delivery back
	// unsent sets NextAttemptAt to when it should be tried again. Only a
	// pending delivery is due again.
	UpdateWebhook(ctx context.Context, d WebhookDelivery) error
}

// WebhookState is where a webhook delivery stands.
type WebhookState string

const (
	WebhookPending   WebhookState = "pending"
	WebhookDelivered WebhookState = "delivered"
	WebhookAbandoned WebhookState = "abandoned" // retried for the whole retry window without success
	WebhookFailed    WebhookState = "failed"    // refused in a way retrying cannot fix (LastError says how), so not retried
)

// WebhookDelivery is one status message to POST to a request's webhook URL.
// It lives in the status store (an outbox), so a crash never loses one.
type WebhookDelivery struct {
	ID            int64
	RequestID     string
	Status        Status
	URL           string
	State         WebhookState
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
}

// ObjectStore is an S3-compatible store. Images and slides live here; only
// keys and presigned URLs travel through Kafka and the API.
type ObjectStore interface {
	// PresignPut returns a URL that accepts PUTs of key until ttl passes,
	// each with exactly the headers h: the store refuses any other content
	// type or size.
	PresignPut(ctx context.Context, key string, h PutHeaders, ttl time.Duration) (string, error)
	// PresignGet returns a URL that reads key until ttl passes.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
	// Stat returns the object's metadata, or an ENOTFOUND error.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Copy copies the object at src to dst inside the store, replacing any
	// object there; an ENOTFOUND error when there is no src. It is atomic:
	// dst is all of src as it was at one moment, however src changes
	// meanwhile. It reads no metadata back: Stat dst for it.
	Copy(ctx context.Context, src, dst string) error
	// Delete removes the object, if there is one.
	Delete(ctx context.Context, key string) error
	Ping(ctx context.Context) error
}

// PutHeaders are the headers a presigned PUT must send, signed into its
// URL so that the store refuses a PUT with any other.
type PutHeaders struct {
	ContentType string // required
	// ContentLength is the body's size in bytes. A PUT of any other size
	// fails the signature, so a URL cannot store more than it was issued
	// for. 0 leaves the size open: only for writers genpipe trusts (the
	// Generative AI writing a slide), never for a user's upload.
	ContentLength int64
	// WriteOnce makes the PUT conditional on there being no object at
	// the key (If-None-Match: *, signed into the URL, so a PUT without it
	// fails the signature): the store stores the first PUT and answers
	// 412 to every later one, so what was uploaded cannot be replaced.
	// AWS S3, MinIO and versitygw evaluate it atomically with the write.
	WriteOnce bool
}

// Header returns the headers as a client sends them.
func (h PutHeaders) Header() map[string]string {
	header := map[string]string{"Content-Type": h.ContentType}
	if h.ContentLength > 0 {
		header["Content-Length"] = strconv.FormatInt(h.ContentLength, 10)
	}
	if h.WriteOnce {
		header["If-None-Match"] = "*"
	}
	return header
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key         string
	Size        int64
	ContentType string
}

// Publisher writes events to Kafka. Publish returns once the broker has the
// record durably (acks=all), or with an EUNAVAILABLE error.
type Publisher interface {
	Publish(ctx context.Context, topic, key string, value []byte) error
}
