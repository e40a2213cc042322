package aisim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

func newChecker(t *testing.T, opts ...aisim.Option) (*aiclient.Checker, *aisim.Service) {
	svc := service(t, "check", opts...)
	return aiclient.NewChecker(serve(t, svc)), svc
}

func TestCheckPasses(t *testing.T) {
	st := newStore(t)
	checker, _ := newChecker(t)
	for _, tc := range []struct {
		name, format string
		data         []byte
	}{
		{"png", "png", pngOf(t, picture(100, 80))},
		{"jpeg", "jpeg", jpegOf(t, picture(100, 80))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := genpipe.CheckInput{RequestID: "r-" + tc.name, ImageURL: st.add(tc.name, tc.data)}
			v, err := checker.Check(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			want := genpipe.CheckVerdict{Pass: true, Format: tc.format, Width: 100, Height: 80}
			if v != want {
				t.Errorf("verdict %+v, want %+v", v, want)
			}
		})
	}
}

func TestCheckRejects(t *testing.T) {
	st := newStore(t)
	checker, _ := newChecker(t)
	full := pngOf(t, picture(200, 200))
	for _, tc := range []struct {
		name   string
		url    string
		reason string
	}{
		{"text", st.add("text", []byte("hello, I am not an image\n")), "not a PNG or JPEG image"},
		{"empty", st.add("empty", nil), "not a PNG or JPEG image"},
		{"tiny", st.add("tiny", grayPNG(t, 10, 10)), "image is 10×10; the minimum is 64×64"},
		{"wide", st.add("wide", grayPNG(t, 9000, 10)), "image is 9000×10; the maximum is 8000×8000"},
		{"tall", st.add("tall", grayPNG(t, 100, 8001)), "image is 100×8001; the maximum is 8000×8000"},
		{"truncated", st.add("truncated", full[:len(full)/2]), "the PNG image is corrupt or truncated"},
		{"forbidden", st.URL + "/obj/deny-expired", "image not found or link expired (HTTP 403)"},
		{"missing", st.URL + "/obj/nothing-here", "image not found or link expired (HTTP 404)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "r-" + tc.name, ImageURL: tc.url})
			if err != nil {
				t.Fatal(err)
			}
			if v.Pass || !strings.HasPrefix(v.Reason, tc.reason) {
				t.Errorf("verdict %+v, want a reject with reason %q", v, tc.reason)
			}
		})
	}
}

// A store failing other than 403/404 is the store's fault, not the image's:
// the worker should retry, so it is an error, not a verdict.
func TestCheckFetchFailureIsUnavailable(t *testing.T) {
	st := newStore(t)
	checker, _ := newChecker(t)
	_, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "r1", ImageURL: st.URL + "/obj/broken"})
	if code := genpipe.ErrorCode(err); code != genpipe.EUNAVAILABLE {
		t.Fatalf("code %q (%v), want %q", code, err, genpipe.EUNAVAILABLE)
	}
	if msg := genpipe.ErrorMessage(err); strings.Contains(msg, st.URL) {
		t.Errorf("message %q leaks the presigned URL", msg)
	}
}

func TestCheckCountsDuplicateRequests(t *testing.T) {
	st := newStore(t)
	checker, svc := newChecker(t)
	url := st.add("img", pngOf(t, picture(64, 64)))
	for _, id := range []string{"a", "b", "a"} {
		if _, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: id, ImageURL: url}); err != nil {
			t.Fatal(err)
		}
	}
	if s := svc.Stats(); s.Calls != 3 || s.UniqueRequests != 2 || s.Succeeded != 3 || s.UniqueSucceeded != 2 || s.InFlight != 0 {
		t.Errorf("stats %+v, want 3 calls and successes, 2 unique requests, none in flight", s)
	}
}
