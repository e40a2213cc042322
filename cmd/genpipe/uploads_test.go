package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/s3"
)

// The image a request was checked on is, byte for byte, the image its slide
// is made from: its upload URL writes once, so a PUT to it after submitting
// is refused and changes nothing. The swap uses all the URL allows: the same
// type and the same size.
func TestE2EImageSwapAfterSubmission(t *testing.T) {
	red, blue := twinPNGs(t, color.RGBA{220, 20, 20, 255}, color.RGBA{20, 20, 220, 255})
	u := uploadImage(t, "image/png", red)
	var a accepted
	if resp := call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "minimal",
		"description": "The red one."}, nil, &a); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests: %s", resp.Status)
	}
	if status := put(t, u.UploadURL, "image/png", blue); status != http.StatusPreconditionFailed {
		t.Fatalf("PUT of the swap through the same URL: %d, want 412", status)
	}
	v := waitTerminal(t, a.ID, 30*time.Second)
	if v.Status != "done" || v.Result == nil {
		t.Fatalf("request ended %s (%s), want done", v.Status, v.Error)
	}
	if c := slidePicture(t, download(t, v.Result.PPTXURL)); c.R < 150 || c.B > 100 {
		t.Fatalf("the slide's picture is %v: not the red image the request was submitted with", c)
	}
}

// twinPNGs returns two valid 96×96 PNGs of one color each and the same
// length: the shorter is padded after its end, which decoders ignore.
func twinPNGs(t *testing.T, a, b color.RGBA) ([]byte, []byte) {
	t.Helper()
	encode := func(c color.RGBA) []byte {
		img := image.NewRGBA(image.Rect(0, 0, 96, 96))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	pa, pb := encode(a), encode(b)
	n := max(len(pa), len(pb))
	return append(pa, make([]byte, n-len(pa))...), append(pb, make([]byte, n-len(pb))...)
}

// slidePicture returns the color at the center of the picture in a slide's
// PPTX.
func slidePicture(t *testing.T, pptx []byte) color.RGBA {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pptx), int64(len(pptx)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := zr.Open("ppt/media/image1.png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	return color.RGBAModel.Convert(img.At(b.Min.X+b.Dx()/2, b.Min.Y+b.Dy()/2)).(color.RGBA)
}

// The object store refuses an upload of another size than the one the URL
// was issued for, and keeps nothing of it; a declared size is required.
func TestE2EUploadSizeIsEnforcedByTheStore(t *testing.T) {
	img := pngImage(t, 120, 90)
	var p problem
	if resp := call(t, "POST", "/v1/uploads", map[string]string{"contentType": "image/png"}, nil, &p); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(p.Detail, "contentLength") {
		t.Fatalf("upload without contentLength: %s %+v; want 400 naming contentLength", resp.Status, p)
	}
	issue := func() upload {
		var u upload
		if resp := call(t, "POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(img)}, nil, &u); resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /v1/uploads: %s", resp.Status)
		}
		if u.Headers["Content-Length"] != fmt.Sprint(len(img)) {
			t.Fatalf("upload headers %v; want the Content-Length it is signed for", u.Headers)
		}
		return u
	}
	refused := func(what string, u upload) {
		t.Helper()
		var p problem
		resp := call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "x"}, nil, &p)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(p.Detail, "never uploaded") {
			t.Fatalf("%s: the store kept something: a request with its objectId got %s %+v; want 422 never uploaded", what, resp.Status, p)
		}
	}

	u := issue()
	bigger := append(bytes.Clone(img), make([]byte, 11<<20)...)
	// The store may refuse before reading the body and close the
	// connection, which the client may see as an error instead of the 403.
	req, _ := http.NewRequest(http.MethodPut, u.UploadURL, bytes.NewReader(bigger))
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("If-None-Match", "*")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("PUT of %d bytes to a URL for %d: %s, want 403", len(bigger), len(img), resp.Status)
		}
	}
	refused("a longer PUT", u)

	u = issue()
	if status := rawPut(t, u.UploadURL, "image/png", len(img)+1, append(bytes.Clone(img), 0)); status != http.StatusForbidden {
		t.Fatalf("PUT with Content-Length %d to a URL for %d: %d, want 403", len(img)+1, len(img), status)
	}
	refused("a PUT with a tampered Content-Length", u)

	// A body longer than its Content-Length: the store reads what the
	// header says, and the rest is not part of the object.
	u = issue()
	if status := rawPut(t, u.UploadURL, "image/png", len(img), append(bytes.Clone(img), bytes.Repeat([]byte("x"), 64<<10)...)); status != http.StatusOK {
		t.Fatalf("PUT with the signed Content-Length and a longer body: %d, want 200 for the declared bytes", status)
	}
	info, err := e2eObjects(t).Stat(t.Context(), genpipe.UploadKey("", u.ObjectID))
	if err != nil || info.Size != int64(len(img)) {
		t.Fatalf("stored upload %+v, %v; want the %d declared bytes", info, err, len(img))
	}
}

// rawPut sends a PUT whose Content-Length header says length, whatever the
// body's length, as no well-behaved client would, and returns the status.
func rawPut(t *testing.T, rawURL, contentType string, length int, body []byte) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nIf-None-Match: *\r\n\r\n",
		u.RequestURI(), u.Host, contentType, length)
	go func() { _, _ = conn.Write(append([]byte(head), body...)) }() // the server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw PUT: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// e2eObjects is a client of up's object store.
func e2eObjects(t *testing.T) *s3.Store {
	t.Helper()
	secrets, _, err := loadSecrets(filepath.Dir(sys.SecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s3.New(sys.ObjectStore, s3.DefaultBucket, secrets.S3AccessKey, secrets.S3SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A cross-site page can POST text/plain or a form without the browser
// asking the API first (no CORS preflight): such bodies are refused.
func TestAPIRefusesBodiesThatAreNotJSON(t *testing.T) {
	for _, contentType := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"} {
		var p problem
		resp := call(t, "POST", "/v1/requests", []byte(`{"objectId":"0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a","style":"minimal","description":"d"}`),
			map[string]string{"Content-Type": contentType}, &p)
		if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(p.Detail, "application/json") {
			t.Errorf("POST /v1/requests as %s: %s %+v; want 415 problem+json naming application/json", contentType, resp.Status, p)
		}
	}
}
