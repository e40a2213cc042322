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
	}
	for value, reason := range cases {
		_, err := genpipe.DecodeEvent([]byte(value))
		if genpipe.ErrorCode(err) != genpipe.EINVALID || !strings.Contains(err.Error(), reason) {
			t.Errorf("DecodeEvent(%s) = %v, want EINVALID mentioning %q", value, err, reason)
		}
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
