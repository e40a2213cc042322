package aisim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

func newGenerator(t *testing.T) (*aiclient.Generator, *aisim.Service) {
	svc := service(t, "generate")
	return aiclient.NewGenerator(serve(t, svc)), svc
}

func generateInput(st *store, imageURL, out string) genpipe.GenerateInput {
	return genpipe.GenerateInput{
		RequestID: "r1", ImageURL: imageURL, Style: genpipe.Styles[1],
		Title: "Quarterly results", Description: "Revenue grew 42% while costs stayed flat.",
		Outputs: genpipe.OutputTargets{
			PNG:  st.URL + "/out/" + out + ".png",
			PDF:  st.URL + "/out/" + out + ".pdf",
			PPTX: st.URL + "/out/" + out + ".pptx",
		},
	}
}

func TestGenerateRendersAndUploads(t *testing.T) {
	st := newStore(t)
	svc := service(t, "generate")
	base := serve(t, svc)
	in := generateInput(st, st.add("img", jpegOf(t, picture(320, 200))), "slide")
	body, _ := json.Marshal(in)

	resp, err := http.Post(base+"/v1/generate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	var out aisim.GenerateOutput
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}

	for _, f := range []struct {
		name, contentType, magic string
		bytes                    int
	}{
		{"slide.png", genpipe.ContentTypePNG, "\x89PNG", out.Outputs.PNG.Bytes},
		{"slide.pdf", genpipe.ContentTypePDF, "%PDF", out.Outputs.PDF.Bytes},
		{"slide.pptx", genpipe.ContentTypePPTX, "PK", out.Outputs.PPTX.Bytes},
	} {
		up, ok := st.uploaded(f.name)
		switch {
		case !ok:
			t.Errorf("%s not uploaded", f.name)
		case up.contentType != f.contentType:
			t.Errorf("%s: Content-Type %q, want %q", f.name, up.contentType, f.contentType)
		case !bytes.HasPrefix(up.body, []byte(f.magic)):
			t.Errorf("%s does not start with %q", f.name, f.magic)
		case len(up.body) != f.bytes:
			t.Errorf("%s: %d bytes stored, answer says %d", f.name, len(up.body), f.bytes)
		}
	}
	up, _ := st.uploaded("slide.png")
	cfg, err := png.DecodeConfig(bytes.NewReader(up.body))
	if err != nil || cfg.Width != 1920 || cfg.Height != 1080 {
		t.Errorf("slide PNG is %d×%d (%v), want 1920×1080", cfg.Width, cfg.Height, err)
	}
	if s := svc.Stats(); s.Calls != 1 || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestGenerateErrors(t *testing.T) {
	st := newStore(t)
	gen, _ := newGenerator(t)
	img := st.add("img", pngOf(t, picture(100, 100)))
	badFont := generateInput(st, img, "font")
	badFont.Style.Font = "comic"
	for _, tc := range []struct {
		name   string
		in     genpipe.GenerateInput
		code   string
		detail string
	}{
		{"upload refused", generateInput(st, img, "deny"), genpipe.EUNAVAILABLE, "uploading the png failed: the object store answered HTTP 403"},
		{"image gone", generateInput(st, st.URL+"/obj/gone", "gone"), genpipe.EINVALID, "image not found or link expired (HTTP 404)"},
		{"not an image", generateInput(st, st.add("txt", []byte("text")), "txt"), genpipe.EINVALID, "not a PNG or JPEG image"},
		{"store down", generateInput(st, st.URL+"/obj/broken", "down"), genpipe.EUNAVAILABLE, "fetching the image failed"},
		{"unknown font", badFont, genpipe.EINVALID, `font "comic"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := gen.Generate(context.Background(), tc.in)
			if code := genpipe.ErrorCode(err); code != tc.code {
				t.Fatalf("code %q (%v), want %q", code, err, tc.code)
			}
			if msg := genpipe.ErrorMessage(err); !strings.Contains(msg, tc.detail) {
				t.Errorf("message %q, want it to contain %q", msg, tc.detail)
			}
		})
	}
}

// Renders run at most WithRenders at once, however many calls hold a slot;
// the others wait for a turn and all succeed.
func TestGenerateBoundsRenders(t *testing.T) {
	st := newStore(t)
	url := st.add("img", pngOf(t, picture(200, 150)))
	svc := service(t, "generate", aisim.WithCapacity(8), aisim.WithRenders(1))
	gen := aiclient.NewGenerator(serve(t, svc))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			in := generateInput(st, url, "s"+strconv.Itoa(i))
			in.RequestID = "r" + strconv.Itoa(i)
			if err := gen.Generate(context.Background(), in); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	m, s := svc.Memory(), svc.Stats()
	t.Logf("renders %+v", m)
	if m.Renders != 1 || m.MaxRendering != 1 || m.Rendering != 0 || s.Succeeded != 4 || m.Held != 0 {
		t.Errorf("memory %+v, stats %+v; want 4 calls served, one render at a time, none left running", m, s)
	}
}

func TestRendersOption(t *testing.T) {
	if _, err := aisim.NewGenerateService(aisim.WithRenders(0)); err == nil || !strings.Contains(err.Error(), "renders") {
		t.Errorf("WithRenders(0): %v, want an error naming renders", err)
	}
	svc := service(t, "generate")
	if got, want := svc.Memory().Renders, runtime.GOMAXPROCS(0); got != want {
		t.Errorf("default renders %d, want GOMAXPROCS %d", got, want)
	}
}
