package genpipe_test

import (
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

func TestEventRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	job := genpipe.Job{ObjectID: "obj", Style: "neon", Title: "T", Description: "D <&> \"quoted\""}
	events := []genpipe.Event{
		genpipe.NewJobEvent(genpipe.EventSubmitted, "req-1", job, at),
		genpipe.NewJobEvent(genpipe.EventChecked, "req-1", job, at),
		genpipe.NewStatusEvent(genpipe.StatusChange{RequestID: "req-1", Status: genpipe.StatusDone,
			Result: &genpipe.Result{PNGKey: "a.png", PDFKey: "a.pdf", PPTXKey: "a.pptx"}, At: at}),
		genpipe.NewStatusEvent(genpipe.StatusChange{RequestID: "req-1", Status: genpipe.StatusRejected, Error: "too small", At: at}),
	}
	for _, e := range events {
		value, err := genpipe.EncodeEvent(e)
		if err != nil {
			t.Fatalf("encode %s: %v", e, err)
		}
		got, err := genpipe.DecodeEvent(value)
		if err != nil {
			t.Fatalf("decode %s: %v", value, err)
		}
		if got.String() != e.String() || !got.At.Equal(e.At) {
			t.Fatalf("round trip: got %s at %v, want %s at %v", got, got.At, e, e.At)
		}
		if e.Job != nil && *got.Job != *e.Job {
			t.Fatalf("job: got %+v, want %+v", *got.Job, *e.Job)
		}
		if e.Result != nil && *got.Result != *e.Result {
			t.Fatalf("result: got %+v, want %+v", *got.Result, *e.Result)
		}
	}
}

// Poison records are refused with EINVALID and a reason, never guessed at.
func TestDecodeEventRefusesPoison(t *testing.T) {
	cases := map[string]string{
		`not json`: "undecodable",
		`{"v":2,"type":"request.submitted","requestId":"r","job":{"objectId":"o","style":"s"}}`: "version 2",
		`{"v":1,"type":"request.exploded","requestId":"r"}`:                                     "unknown event type",
		`{"v":1,"type":"request.submitted","job":{"objectId":"o","style":"s"}}`:                 "requestId",
		`{"v":1,"type":"request.submitted","requestId":"r"}`:                                    "complete job",
		`{"v":1,"type":"request.status","requestId":"r","status":"exploded"}`:                   "unknown status",
		`{}`: "version 0",
		// What a database column refuses, or a broker's record cannot
		// carry onward, is poison too, not a write retried for ever.
		`{"v":1,"type":"request.status","requestId":"r","status":"failed","error":"boom\u0000"}`:                              "NUL character in its error",
		`{"v":1,"type":"request.submitted","requestId":"r\u0000","job":{"objectId":"o","style":"s"}}`:                         "NUL character in its requestId",
		`{"v":1,"type":"request.submitted","requestId":"r","tenant":"a\u0000","job":{"objectId":"o","style":"s"}}`:            "NUL character in its tenant",
		`{"v":1,"type":"request.status","requestId":"r","status":"done","result":{"pngKey":"a","slides":99999999999}}`:        "99999999999 slides",
		`{"v":1,"type":"request.status","requestId":"r","status":"done","result":{"pngKey":"a","slides":-1}}`:                 "-1 slides",
		`{"v":1,"type":"request.submitted","requestId":"` + strings.Repeat("r", 65) + `","job":{"objectId":"o","style":"s"}}`: "requestId of 65 bytes",
		`{"v":1,"type":"request.submitted","requestId":"r","job":{"objectId":"o","style":"s","description":"` +
			strings.Repeat("é", genpipe.MaxDescriptionRunes+1) + `"}}`: "description of 2001 characters",
		`{"v":1,"type":"request.submitted","requestId":"r","job":{"objectId":"o","style":"s","title":"` +
			strings.Repeat("t", genpipe.MaxTitleRunes+1) + `"}}`: "title of 201 characters",
		`{"v":1,"type":"request.checked","requestId":"r","job":{"objectId":"` + strings.Repeat("o", 1025) + `","style":"s"}}`: "job.objectId of 1025 bytes",
	}
	for value, reason := range cases {
		_, err := genpipe.DecodeEvent([]byte(value))
		if genpipe.ErrorCode(err) != genpipe.EINVALID || !strings.Contains(err.Error(), reason) {
			t.Errorf("DecodeEvent(%s) = %v, want EINVALID mentioning %q", value, err, reason)
		}
	}
}

// The longest texts an event takes decode; a status event's error longer
// than the bound is cut when the event is made, at a character boundary.
func TestEventTextBounds(t *testing.T) {
	job := genpipe.Job{ObjectID: "o", Style: "s", Title: strings.Repeat("t", genpipe.MaxTitleRunes),
		Description: strings.Repeat("é", genpipe.MaxDescriptionRunes)}
	if _, err := genpipe.EncodeEvent(genpipe.NewJobEvent(genpipe.EventSubmitted, "r", job, time.Now())); err != nil {
		t.Errorf("a job of the longest title and description: %v", err)
	}
	long := strings.Repeat("é", genpipe.MaxEventErrorLen)
	e := genpipe.NewStatusEvent(genpipe.StatusChange{RequestID: "r", Status: genpipe.StatusFailed, Error: long, At: time.Now()})
	if len(e.Error) > genpipe.MaxEventErrorLen || !strings.HasSuffix(e.Error, "é…") {
		t.Errorf("error of %d bytes ends %q; want at most %d, cut after a whole character", len(e.Error), e.Error[len(e.Error)-8:],
			genpipe.MaxEventErrorLen)
	}
	if _, err := genpipe.EncodeEvent(e); err != nil {
		t.Errorf("status event with the error cut: %v", err)
	}
}

func TestEncodeEventRefusesIncomplete(t *testing.T) {
	if _, err := genpipe.EncodeEvent(genpipe.Event{Version: 1, Type: genpipe.EventStatus, RequestID: "r"}); err == nil {
		t.Fatal("a status event without a status encoded")
	}
}

func BenchmarkEventCodec(b *testing.B) {
	e := genpipe.NewJobEvent(genpipe.EventSubmitted, "0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a",
		genpipe.Job{ObjectID: "9a4e7c1d-2f1c-4c2a-9b1e-7a4e7c1d2f3a", Style: "corporate", Title: "Quarterly results",
			Description: strings.Repeat("Revenue grew. ", 20)}, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		value, err := genpipe.EncodeEvent(e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := genpipe.DecodeEvent(value); err != nil {
			b.Fatal(err)
		}
	}
}
