package genpipe

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// EventVersion is the version of the event format this build writes. A
// record with another version is refused by DecodeEvent, never guessed at.
const EventVersion = 1

// EventType says what an event reports.
type EventType string

const (
	EventSubmitted EventType = "request.submitted" // on the requests topic: a request to check
	EventChecked   EventType = "request.checked"   // on the checked topic: passed the check, to generate
	EventStatus    EventType = "request.status"    // on the results topic: a status change
)

// Topics names the Kafka topics of one pipeline. Every record's key is the
// request id, so one request's events stay in order in one partition and a
// burst spreads over all partitions.
type Topics struct {
	Requests string // EventSubmitted, produced by the API
	Checked  string // EventChecked, produced by check workers
	Results  string // EventStatus, produced by workers, read by the notifier and the API's SSE feed
	// DeadLetters holds records set aside (poison, or failed for good),
	// with the reason in headers; see DeadLetter.
	DeadLetters string
}

// DefaultTopics are the topic names used unless configured otherwise.
func DefaultTopics() Topics {
	return Topics{Requests: "genpipe.requests", Checked: "genpipe.checked", Results: "genpipe.results",
		DeadLetters: "genpipe.deadletters"}
}

// All lists the topics.
func (t Topics) All() []string { return []string{t.Requests, t.Checked, t.Results, t.DeadLetters} }

// Event is the versioned JSON record value of every genpipe topic. It
// carries ids and text, never image bytes.
type Event struct {
	Version   int       `json:"v"`
	Type      EventType `json:"type"`
	RequestID string    `json:"requestId"`
	At        time.Time `json:"at"`

	Job *Job `json:"job,omitempty"` // submitted and checked events

	Status Status  `json:"status,omitempty"` // status events
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`

	// Replay counts how often an operator replayed this event from the
	// dead-letter queue; 0 for the original. A stage that failed for good
	// is tried again only for a newer replay (see ClaimRequest.Replay).
	Replay int `json:"replay,omitempty"`

	// Share is the request's tenant, priority and weight, the same in
	// every event about it; empty in events of builds before tenants,
	// which count as the default tenant's at normal priority.
	Share
	// StartBy is the request's deadline (Request.StartBy), the same in
	// every event about it, so that a stage expires it without reading the
	// status store; zero (left out) for none.
	StartBy time.Time `json:"startBy,omitzero"`
}

// NewJobEvent returns a submitted or checked event for a job.
func NewJobEvent(t EventType, requestID string, job Job, at time.Time) Event {
	return Event{Version: EventVersion, Type: t, RequestID: requestID, At: at.UTC(), Job: &job}
}

// Bounds of an event's text, which DecodeEvent and EncodeEvent check: an
// event within them is a few kilobytes, far under what a broker takes in
// a record (1 MB by default), and each text fits a database column.
const (
	// MaxTitleRunes and MaxDescriptionRunes bound a job's title and
	// description, in characters; the API takes no longer ones.
	MaxTitleRunes       = 200
	MaxDescriptionRunes = 2000
	// MaxEventErrorLen bounds a status event's error, in bytes;
	// NewStatusEvent cuts a longer one.
	MaxEventErrorLen = 4096
	// maxEventIDLen bounds a request id (the API's are UUIDs, 36 bytes).
	maxEventIDLen = 64
	// maxEventKeyLen bounds an object key, an object id or a style id,
	// as S3 bounds keys.
	maxEventKeyLen = 1024
)

// NewStatusEvent returns a status event for a change, its error cut to
// MaxEventErrorLen.
func NewStatusEvent(c StatusChange) Event {
	return Event{Version: EventVersion, Type: EventStatus, RequestID: c.RequestID, At: c.At.UTC(),
		Status: c.Status, Result: c.Result, Error: cutText(c.Error, MaxEventErrorLen)}
}

// cutText returns s cut to at most n bytes, at a character boundary, with
// "…" in place of what was cut.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "…"
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// StatusChange returns the change a status event reports.
func (e Event) StatusChange() StatusChange {
	return StatusChange{RequestID: e.RequestID, Status: e.Status, Result: e.Result, Error: e.Error, At: e.At}
}

// EncodeEvent returns the record value of e.
func EncodeEvent(e Event) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// DecodeEvent parses a record value. Anything undecodable, of an unknown
// version or type, or missing what its type needs is an EINVALID error: a
// poison record to set aside, not to retry.
func DecodeEvent(value []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(value, &e); err != nil {
		return Event{}, Errorf(EINVALID, "undecodable event: %v", err)
	}
	if err := e.validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

func (e Event) validate() error {
	if e.Version != EventVersion {
		return Errorf(EINVALID, "unknown event version %d (this build reads %d)", e.Version, EventVersion)
	}
	if e.RequestID == "" {
		return Errorf(EINVALID, "event without requestId")
	}
	if e.Replay < 0 {
		return Errorf(EINVALID, "event with a negative replay count %d", e.Replay)
	}
	if err := e.Share.validate(); err != nil {
		return err
	}
	if err := e.validateText(); err != nil {
		return err
	}
	switch e.Type {
	case EventSubmitted, EventChecked:
		if e.Job == nil || e.Job.ObjectID == "" || e.Job.Style == "" {
			return Errorf(EINVALID, "%s event without a complete job", e.Type)
		}
	case EventStatus:
		if !e.Status.Valid() {
			return Errorf(EINVALID, "status event with unknown status %q", e.Status)
		}
	default:
		return Errorf(EINVALID, "unknown event type %q", e.Type)
	}
	return nil
}

// validateText reports a text of e over its bound, or holding a NUL
// character, which JSON carries (\u0000) and no database text column
// takes: refused here, such an event is poison for the dead-letter topic,
// not a write that fails at every retry.
func (e Event) validateText() error {
	type text struct {
		name, value string
		most        int // bytes
	}
	texts := []text{{"requestId", e.RequestID, maxEventIDLen}, {"error", e.Error, MaxEventErrorLen}} // the tenant: Share.validate
	if j := e.Job; j != nil {
		texts = append(texts, text{"job.objectId", j.ObjectID, maxEventKeyLen}, text{"job.style", j.Style, maxEventKeyLen},
			text{"job.image", j.Image, maxEventKeyLen},
			text{"job.title", j.Title, utf8.UTFMax * MaxTitleRunes}, text{"job.description", j.Description, utf8.UTFMax * MaxDescriptionRunes})
		if n := utf8.RuneCountInString(j.Title); n > MaxTitleRunes {
			return Errorf(EINVALID, "event with a title of %d characters (the most is %d)", n, MaxTitleRunes)
		}
		if n := utf8.RuneCountInString(j.Description); n > MaxDescriptionRunes {
			return Errorf(EINVALID, "event with a description of %d characters (the most is %d)", n, MaxDescriptionRunes)
		}
	}
	if r := e.Result; r != nil {
		texts = append(texts, text{"result.pngKey", r.PNGKey, maxEventKeyLen}, text{"result.pdfKey", r.PDFKey, maxEventKeyLen},
			text{"result.pptxKey", r.PPTXKey, maxEventKeyLen})
		if r.Slides < 0 || r.Slides > MaxSlides {
			return Errorf(EINVALID, "event with a result of %d slides (0 to %d)", r.Slides, MaxSlides)
		}
	}
	for _, t := range texts {
		switch {
		case len(t.value) > t.most:
			return Errorf(EINVALID, "event with a %s of %d bytes (the most is %d)", t.name, len(t.value), t.most)
		case strings.IndexByte(t.value, 0) >= 0:
			return Errorf(EINVALID, "event with a NUL character in its %s", t.name)
		}
	}
	return nil
}

// String is for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s v%d %s %s", e.Type, e.Version, e.RequestID, e.Status)
}
