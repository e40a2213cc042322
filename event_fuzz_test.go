package genpipe_test

import (
	"bytes"
	"testing"

	"github.com/genpipe/genpipe"
)

// FuzzDecodeEvent feeds arbitrary record values to DecodeEvent, as a topic
// full of poison would. Decoding never panics; a refusal is EINVALID (a
// poison record to set aside); and whatever decodes re-encodes, and the
// encoding decodes to the same event and encodes to the same bytes.
//
// The corpus in testdata/fuzz/FuzzDecodeEvent runs as a test; explore with
// go test -run XXX -fuzz FuzzDecodeEvent .
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"request.status","requestId":"r","at":"2026-11-24T12:00:00Z","status":"done"}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		e, err := genpipe.DecodeEvent(value)
		if err != nil {
			if code := genpipe.ErrorCode(err); code != genpipe.EINVALID {
				t.Fatalf("DecodeEvent(%q) error code %q (%v); want %q", value, code, err, genpipe.EINVALID)
			}
			return
		}
		encoded, err := genpipe.EncodeEvent(e)
		if err != nil {
			t.Fatalf("DecodeEvent(%q) = %+v, which does not encode: %v", value, e, err)
		}
		again, err := genpipe.DecodeEvent(encoded)
		if err != nil {
			t.Fatalf("the encoding %q of a decoded event does not decode: %v", encoded, err)
		}
		if !sameEvent(e, again) {
			t.Fatalf("event %+v encodes as %q, which decodes to %+v", e, encoded, again)
		}
		if reencoded, err := genpipe.EncodeEvent(again); err != nil || !bytes.Equal(reencoded, encoded) {
			t.Fatalf("encoding is not stable: %q, then %q (%v)", encoded, reencoded, err)
		}
	})
}

// sameEvent compares events field by field, times by instant and offset
// (a decoded time's *Location differs on every decode).
func sameEvent(a, b genpipe.Event) bool {
	_, aOffset := a.At.Zone()
	_, bOffset := b.At.Zone()
	return a.Version == b.Version && a.Type == b.Type && a.RequestID == b.RequestID &&
		a.At.Equal(b.At) && aOffset == bOffset &&
		equalPtr(a.Job, b.Job) && a.Status == b.Status && equalPtr(a.Result, b.Result) &&
		a.Error == b.Error && a.Replay == b.Replay
}

func equalPtr[T comparable](a, b *T) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}
