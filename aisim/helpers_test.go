package aisim_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/internal/testutil"
)

// store is a stand-in for the object store behind presigned URLs: GET
// /obj/{name} serves what put stored, PUT /out/{name} records the upload.
// Names starting with "deny" answer 403, "broken" 500, unknown names 404.
type store struct {
	*httptest.Server
	mu      sync.Mutex
	objects map[string][]byte
	puts    map[string]upload
}

type upload struct {
	contentType string
	body        []byte
}

func newStore(t *testing.T) *store {
	s := &store{objects: map[string][]byte{}, puts: map[string]upload{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /obj/{name}", s.get)
	mux.HandleFunc("PUT /out/{name}", s.put)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *store) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if deny(w, name) {
		return
	}
	s.mu.Lock()
	data, ok := s.objects[name]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(data)
}

func (s *store) put(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if deny(w, name) {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.puts[name] = upload{contentType: r.Header.Get("Content-Type"), body: body}
	s.mu.Unlock()
}

func deny(w http.ResponseWriter, name string) bool {
	switch {
	case strings.HasPrefix(name, "deny"):
		http.Error(w, "AccessDenied", http.StatusForbidden)
	case strings.HasPrefix(name, "broken"):
		http.Error(w, "InternalError", http.StatusInternalServerError)
	default:
		return false
	}
	return true
}

// add stores an object and returns its GET URL.
func (s *store) add(name string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[name] = data
	return s.URL + "/obj/" + name
}

func (s *store) uploaded(name string) (upload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.puts[name]
	return u, ok
}

// service returns the simulated AI of model ("check" or "generate")
// with opts, without latency unless opts set one.
func service(t *testing.T, model string, opts ...aisim.Option) *aisim.Service {
	t.Helper()
	return testutil.Must(aisim.New(model, append([]aisim.Option{aisim.WithLatency(0)}, opts...)...))(t)
}

// serve runs svc on a loopback listener and returns its base URL.
func serve(t *testing.T, svc *aisim.Service) string {
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// picture is a w×h image with a gradient, so encoders do some work.
func picture(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 0xff})
		}
	}
	return img
}

func pngOf(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegOf(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// grayPNG is a cheap PNG of any size: a blank gray image compresses to
// almost nothing, so its header can claim huge dimensions.
func grayPNG(t *testing.T, w, h int) []byte {
	return pngOf(t, image.NewGray(image.Rect(0, 0, w, h)))
}
