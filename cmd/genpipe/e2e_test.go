package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/client"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/notifier"
)

// TestE2EUploadToSlide goes the way a program would, through the client
// package: upload, submit, follow live, download; then the webhook.
func TestE2EUploadToSlide(t *testing.T) {
	hooks := newWebhookReceiver(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := apiClient(t)
	objectID, err := c.UploadImage(ctx, "image/png", pngImage(t, 320, 200))
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Submit(ctx, client.Submission{ObjectID: objectID, Style: "sunset", Title: "Quarterly results",
		Description: "Revenue grew 40% year over year, driven by the new slide service.", WebhookURL: hooks.url})
	if err != nil {
		t.Fatalf("POST /v1/requests: %v", err)
	}
	if a.Status != "received" || a.Message != "request received, please wait" || a.ID == "" {
		t.Fatalf("202 body = %+v", a)
	}
	var seen []genpipe.Status
	final, err := c.Follow(ctx, a.ID, func(ev client.Event) error { seen = append(seen, ev.Status); return nil })
	if err != nil || final.Status != "done" || final.Result == nil {
		t.Fatalf("request ended %s (%s, %v), want done with a result; saw %v", final.Status, final.Error, err, seen)
	}
	// The stream may tell done before the status store has it: GET
	// catches up.
	var v *genpipe.RequestView
	testutil.Eventually(t, 10*time.Second, "GET to show the request done", func() bool {
		v, err = c.Get(ctx, a.ID)
		return err == nil && v.Status == "done" && v.Result != nil
	})
	for link, check := range map[string]func(*testing.T, []byte){v.Result.PNGURL: checkPNG, v.Result.PDFURL: checkPDF, v.Result.PPTXURL: checkPPTX} {
		var file bytes.Buffer
		if _, err := c.Download(ctx, link, &file); err != nil {
			t.Fatal(err)
		}
		check(t, file.Bytes())
	}

	delivery := hooks.wait(t, 15*time.Second)
	if err := notifier.Verify(sys.WebhookSecret, delivery.header, delivery.body, notifier.DefaultTolerance); err != nil {
		t.Fatalf("webhook does not verify: %v (headers %v)", err, delivery.header)
	}
	var hv requestView
	if err := json.Unmarshal(delivery.body, &hv); err != nil {
		t.Fatalf("webhook body %q: %v", delivery.body, err)
	}
	if hv.ID != a.ID || hv.Status != "done" || hv.Result == nil {
		t.Fatalf("webhook payload = %+v, want done with result for %s", hv, a.ID)
	}
	checkPNG(t, download(t, hv.Result.PNGURL))
	// One lifetime for the links of every channel: -result-ttl.
	if get, hook := linkLifetime(t, v.Result.PNGURL), linkLifetime(t, hv.Result.PNGURL); get != hook {
		t.Errorf("GET's links are presigned for %s s, the webhook's for %s s; want one lifetime", get, hook)
	}
	// GET tells where the webhook stands.
	testutil.Eventually(t, 10*time.Second, "GET to show the webhook delivered", func() bool {
		got, err := c.Get(ctx, a.ID)
		return err == nil && got.Webhook != nil && got.Webhook.State == "delivered" && got.Webhook.Attempts == 1
	})
}

// A description too long for one slide continues on further ones, and the
// user gets every one: a PNG a slide (pngUrls, saved by the client as
// NAME.2.png, ...) and as many PPTX slides.
func TestE2ELongDescriptionMakesADeck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := apiClient(t)
	objectID, err := c.UploadImage(ctx, "image/png", pngImage(t, 320, 200))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("Nothing a user writes is cut: what does not fit continues on the next slide. ", 25)
	a, err := c.Submit(ctx, client.Submission{ObjectID: objectID, Style: "corporate", Title: "A long story", Description: long})
	if err != nil {
		t.Fatal(err)
	}
	final, err := c.Follow(ctx, a.ID, func(client.Event) error { return nil })
	if err != nil || final.Status != "done" || final.Result == nil {
		t.Fatalf("request ended %s (%s, %v); want done", final.Status, final.Error, err)
	}
	res := final.Result
	if len(res.PNGURLs) < 2 || res.PNGURLs[0] != res.PNGURL {
		t.Fatalf("pngUrls %d, first %v; want a deck of at least 2 slides, the first pngUrl", len(res.PNGURLs), res.PNGURLs[0] == res.PNGURL)
	}
	dir := t.TempDir()
	paths, err := c.DownloadResult(ctx, res, dir, "deck")
	if err != nil || len(paths) != 3+len(res.PNGURLs)-1 {
		t.Fatalf("DownloadResult = %v, %v; want the PDF, the PPTX and %d PNGs", paths, err, len(res.PNGURLs))
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(path) {
		case ".png":
			checkPNG(t, data)
		case ".pdf": // its pages, one a slide, are checked in package slide
			checkPDF(t, data)
		case ".pptx":
			zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			slides := 0
			for _, f := range zr.File {
				if strings.HasPrefix(f.Name, "ppt/slides/slide") && strings.HasSuffix(f.Name, ".xml") {
					slides++
				}
			}
			if slides != len(res.PNGURLs) {
				t.Errorf("the PPTX has %d slides; want %d, one a PNG", slides, len(res.PNGURLs))
			}
		}
	}
}

// apiClient is a client of the test's up, through http.DefaultClient and
// so checked against the OpenAPI description.
func apiClient(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.WithBaseURL(sys.API))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// linkLifetime is how long a presigned link was signed for, in seconds.
func linkLifetime(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("X-Amz-Expires") == "" {
		t.Fatalf("link %q is not presigned (%v)", link, err)
	}
	return u.Query().Get("X-Amz-Expires")
}

func checkPNG(t *testing.T, data []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("slide PNG does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1920 || b.Dy() != 1080 {
		t.Fatalf("slide PNG is %dx%d, want 1920x1080", b.Dx(), b.Dy())
	}
}

func checkPDF(t *testing.T, data []byte) {
	t.Helper()
	if !bytes.HasPrefix(data, []byte("%PDF-")) || !bytes.Contains(data[max(0, len(data)-64):], []byte("%%EOF")) {
		t.Fatalf("slide PDF is not a PDF (%d bytes, starts %q)", len(data), data[:min(16, len(data))])
	}
}

func checkPPTX(t *testing.T, data []byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("slide PPTX is not a zip: %v", err)
	}
	parts := map[string]bool{}
	for _, f := range zr.File {
		parts[f.Name] = true
	}
	for _, want := range []string{"[Content_Types].xml", "ppt/presentation.xml", "ppt/slides/slide1.xml"} {
		if !parts[want] {
			t.Fatalf("slide PPTX lacks %s; has %v", want, parts)
		}
	}
}

func TestE2ENonImageRejected(t *testing.T) {
	cases := map[string][]byte{
		"text file":   []byte("this is not an image at all"),
		"small image": pngImage(t, 10, 10),
	}
	reasons := map[string]string{"text file": "PNG or JPEG", "small image": "64"}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			u := uploadImage(t, "image/png", body)
			var a accepted
			call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "x"}, nil, &a)
			v := waitTerminal(t, a.ID, 30*time.Second)
			if v.Status != "rejected" || !strings.Contains(v.Error, reasons[name]) {
				t.Fatalf("ended %s with error %q; want rejected mentioning %q", v.Status, v.Error, reasons[name])
			}
		})
	}
}

func TestE2ESSEEventsInOrder(t *testing.T) {
	u := uploadImage(t, "image/png", pngImage(t, 128, 128))
	var a accepted
	call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "neon", "description": "Live updates"}, nil, &a)
	resp, err := http.Get(sys.API + "/v1/requests/" + a.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var statuses []string
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() { // the stream ends by itself after the terminal status
		if data, ok := strings.CutPrefix(scanner.Text(), "data: "); ok {
			var ev struct {
				Status string `json:"status"`
				Result *struct {
					PNGURL string `json:"pngUrl"`
				} `json:"result"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event data %q: %v", data, err)
			}
			statuses = append(statuses, ev.Status)
			if ev.Status == "done" && (ev.Result == nil || ev.Result.PNGURL == "") {
				t.Fatalf("done event without result links: %s", data)
			}
		}
	}
	want := []string{"received", "checking", "generating", "done"}
	if strings.Join(statuses, ",") != strings.Join(want, ",") {
		t.Fatalf("SSE statuses = %v, want %v", statuses, want)
	}
}

func TestE2EIdempotencyKey(t *testing.T) {
	u := uploadImage(t, "image/jpeg", pngImage(t, 100, 100)) // the check decides the real type
	body := map[string]string{"objectId": u.ObjectID, "style": "forest", "description": "Once only"}
	key := map[string]string{"Idempotency-Key": "test-" + u.ObjectID}
	var first, second accepted
	if resp := call(t, "POST", "/v1/requests", body, key, &first); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first POST: %s", resp.Status)
	}
	if resp := call(t, "POST", "/v1/requests", body, key, &second); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry POST: %s", resp.Status)
	}
	if first.ID != second.ID {
		t.Fatalf("retry with the same Idempotency-Key got id %s, first got %s", second.ID, first.ID)
	}
	body["description"] = "Something else"
	var p problem
	if resp := call(t, "POST", "/v1/requests", body, key, &p); resp.StatusCode != http.StatusConflict {
		t.Fatalf("same key, other body: %s, want 409", resp.Status)
	}
}

type problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// webhookReceiver records signed webhook POSTs.
type webhookReceiver struct {
	url  string
	mu   sync.Mutex
	got  []delivery
	cond chan struct{}
}

type delivery struct {
	body   []byte
	header http.Header
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{cond: make(chan struct{}, 16)}
	srv := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		_ = described.CheckWebhook(req.Header, body) // a breach fails the run
		r.mu.Lock()
		r.got = append(r.got, delivery{body: body, header: req.Header.Clone()})
		r.mu.Unlock()
		r.cond <- struct{}{}
	}))
	r.url = srv + "/hook"
	return r
}

func (r *webhookReceiver) wait(t *testing.T, timeout time.Duration) delivery {
	t.Helper()
	select {
	case <-r.cond:
	case <-time.After(timeout):
		t.Fatalf("no webhook within %s", timeout)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}
