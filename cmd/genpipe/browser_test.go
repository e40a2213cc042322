package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/genpipe/genpipe"
)

// TestBrowserMakesASlide drives the web page in headless Chromium through
// one whole request: choose an image, a style, a description and a
// deadline, submit, watch the status move live, see the slide preview, and
// open the usage panel.
func TestBrowserMakesASlide(t *testing.T) {
	ctx := browser(t)
	dir := t.TempDir()
	imagePath := filepath.Join(dir, "photo.png")
	if err := os.WriteFile(imagePath, pngImage(t, 400, 300), 0o644); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(sys.API+"/"),
		chromedp.WaitReady(`#style option[value="forest"]`),
		chromedp.SetUploadFiles(`#image`, []string{imagePath}),
		chromedp.SetValue(`#style`, "forest"),
		chromedp.SendKeys(`#description`, "Browser test: a slide made through the web page."),
		chromedp.SetValue(`#max-wait`, "3600"),
		chromedp.Click(`#submit`),
	)
	if err != nil {
		t.Fatalf("fill in and submit the form: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Poll[string](
		`["done","rejected","failed"].includes(document.body.dataset.status) && document.body.dataset.status`,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		message, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("message").textContent`))
		t.Fatalf("waiting for the page to show a final status: %v (message %q)", err, message)
	}
	if status != "done" {
		t.Fatalf("page shows status %q, want done", status)
	}
	width, err := chromedp.Run(ctx, chromedp.Poll[int](
		`document.getElementById("slide").complete && document.getElementById("slide").naturalWidth`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil || width != 1920 {
		t.Fatalf("slide preview width = %d (%v), want 1920", width, err)
	}
	steps, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#steps li.done").length`))
	if err != nil || steps != 4 {
		t.Fatalf("%d status steps marked done (%v), want 4", steps, err)
	}
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.requestId`))
	if err != nil {
		t.Fatal(err)
	}
	var v genpipe.RequestView
	call(t, "GET", "/v1/requests/"+id, nil, nil, &v)
	if v.StartBy.IsZero() || v.StartBy.Sub(v.CreatedAt) > time.Hour+time.Minute {
		t.Errorf("request %s made with \"Start within 1 hour\" has startBy %v (created %v)", id, v.StartBy, v.CreatedAt)
	}
	usage, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(document.getElementById("usage").open = true) && /generate: \d+ calls?/.test(document.getElementById("usage-text").textContent) && document.getElementById("usage-text").textContent`,
		chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		t.Errorf("usage panel shows no generate calls (%v): %q", err, usage)
	}
	if out := os.Getenv("GENPIPE_SCREENSHOT"); out != "" { // for a person to look at
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(out, shot, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}
}

// browser starts headless Chromium for the test, or skips when there is
// none (fails instead under GENPIPE_REQUIRE_BROWSER, as in CI).
func browser(t *testing.T) context.Context {
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("GENPIPE_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium not found but GENPIPE_REQUIRE_BROWSER is set: %v", err)
		}
		t.Skip("chromium not installed (scripts/test.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1200, 1400),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// browserCancels drives the web page at api through a cancel: submit a
// request, click Cancel while it has not ended, and see the page show it
// canceled, with the Cancel button gone. The system behind api must keep
// the request waiting for a while (a slow Checking AI).
func browserCancels(t *testing.T, api string) {
	ctx := browser(t)
	imagePath := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(imagePath, pngImage(t, 400, 300), 0o644); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(api+"/"),
		chromedp.WaitReady(`#style option[value="forest"]`),
		chromedp.SetUploadFiles(`#image`, []string{imagePath}),
		chromedp.SendKeys(`#description`, "Browser test: a request canceled from the web page."),
		chromedp.Click(`#submit`),
		chromedp.WaitVisible(`#cancel`),
		chromedp.Click(`#cancel`),
	)
	if err != nil {
		t.Fatalf("submit and click Cancel: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Poll[string](
		`["done","rejected","failed","canceled","expired"].includes(document.body.dataset.status) && document.body.dataset.status`,
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil || status != "canceled" {
		message, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("message").textContent`))
		t.Fatalf("page shows %q (%v, message %q); want canceled", status, err, message)
	}
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("cancel").hidden`))
	if err != nil || !hidden {
		t.Errorf("Cancel button still shown on a canceled request (%v)", err)
	}
	if out := os.Getenv("GENPIPE_SCREENSHOT_CANCEL"); out != "" { // for a person to look at
		if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(out, shot, 0o644)
		}
	}
}

// flakyProxy stands between the browser and the API, as a network would:
// it can hold the next event stream after its first event and, when told,
// cut it and break every new one until told to stop, the way a lost
// connection does. It records what the page asked for.
type flakyProxy struct {
	proxy *httputil.ReverseProxy

	mu        sync.Mutex
	holdNext  bool          // hold the next event stream after its first event
	held      chan struct{} // closed by cut
	cancel    func()        // the held stream's request to the API
	refusing  bool          // break every new event stream at once
	resumedAt []string      // the Last-Event-ID of each event stream let through
	uploads   int           // POST /v1/uploads let through
}

func newFlakyProxy(t *testing.T, api string) (*httptest.Server, *flakyProxy) {
	t.Helper()
	target, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{proxy: httputil.NewSingleHostReverseProxy(target), held: make(chan struct{})}
	p.proxy.FlushInterval = -1
	p.proxy.ErrorLog = log.New(io.Discard, "", 0) // a cut stream is the point
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { p.cut(false) }) // before Close, which waits for the held stream
	return srv, p
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if r.Method == http.MethodPost && r.URL.Path == "/v1/uploads" {
		p.uploads++
	}
	stream := strings.HasSuffix(r.URL.Path, "/events")
	refuse, hold := stream && p.refusing, stream && p.holdNext && !p.refusing
	if hold {
		p.holdNext = false
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		r, p.cancel = r.WithContext(ctx), cancel
		w = &holdWriter{ResponseWriter: w, held: p.held}
	}
	if stream && !refuse {
		p.resumedAt = append(p.resumedAt, r.Header.Get("Last-Event-ID"))
	}
	p.mu.Unlock()
	if refuse { // the connection is lost before any answer
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// cut ends the held stream mid-answer and, with refuse, breaks every new
// event stream from now on; without, lets them through again.
func (p *flakyProxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = refuse
	select {
	case <-p.held:
	default:
		close(p.held)
	}
	if p.cancel != nil {
		p.cancel()
	}
}

// holdWriter lets the stream's first event through, then holds every
// write until the stream is cut, and fails it then.
type holdWriter struct {
	http.ResponseWriter
	held   <-chan struct{}
	passed bool
}

var errCut = errors.New("the test cut the stream")

func (w *holdWriter) Write(b []byte) (int, error) {
	if w.passed {
		<-w.held
		return 0, errCut
	}
	n, err := w.ResponseWriter.Write(b)
	w.passed = bytes.Contains(b, []byte("id: "))
	return n, err
}

func (w *holdWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *holdWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// pageEvent is an event the page took from the stream (window.genpipeEvents).
type pageEvent struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// TestBrowserSurvivesReloadAndReconnect drives the page through a lost
// connection and a reload: the live stream is cut after its first event
// and every reconnection fails until the request is done; the page must
// say it is retrying, reconnect by itself with Last-Event-ID, and take
// every later event once, in order. Its address is then the request's
// page, which a reload shows again, done, with its slide and downloads
// named after it. axe-core checks the form, the waiting request and the
// finished one at desktop and phone sizes.
func TestBrowserSurvivesReloadAndReconnect(t *testing.T) {
	ctx := browser(t)
	srv, proxy := newFlakyProxy(t, sys.API)
	imagePath := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(imagePath, pngImage(t, 400, 300), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitReady(`#style option[value="forest"]`)); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	checkAccessible(t, ctx, "form")

	proxy.mu.Lock()
	proxy.holdNext = true
	proxy.mu.Unlock()
	err := chromedp.Do(ctx,
		chromedp.SetUploadFiles(`#image`, []string{imagePath}),
		chromedp.SetValue(`#style`, "forest"),
		chromedp.SendKeys(`#title`, "A page that survives anything"),
		chromedp.SendKeys(`#description`, "Browser test: a slide whose stream is cut."),
		chromedp.Click(`#submit`),
	)
	if err != nil {
		t.Fatalf("fill in and submit the form: %v", err)
	}
	before, err := chromedp.Run(ctx, chromedp.Poll[[]pageEvent](`window.genpipeEvents.length > 0 && window.genpipeEvents`,
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("the page took no event: %v", err)
	}
	proxy.cut(true) // the page has all the held stream sent: it is held after its first write
	message, err := chromedp.Run(ctx, chromedp.Poll[string](
		`/retrying/.test(document.getElementById("message").textContent) && document.getElementById("message").textContent`,
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		t.Fatalf("the page did not say it is retrying after the stream was cut: %v", err)
	}
	if message != "Error: Can't reach genpipe — retrying…" {
		t.Errorf("message while the stream is down = %q", message)
	}
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.requestId`))
	if err != nil || id == "" {
		t.Fatalf("no request id on the page (%v)", err)
	}
	checkAccessible(t, ctx, "waiting request")
	if v := waitTerminal(t, id, 60*time.Second); v.Status != "done" {
		t.Fatalf("request %s ended %s (%s)", id, v.Status, v.Error)
	}
	proxy.cut(false)
	waitPageStatus(t, ctx, "done")
	var events []pageEvent
	if events, err = chromedp.Run(ctx, chromedp.Evaluate[[]pageEvent](`window.genpipeEvents`)); err != nil {
		t.Fatal(err)
	}
	want := []pageEvent{{"1", "received"}, {"2", "checking"}, {"3", "generating"}, {"5", "done"}}
	if !slices.Equal(events, want) {
		t.Errorf("events the page took across the reconnect: %v; want each once, in order: %v", events, want)
	}
	proxy.mu.Lock()
	resumedAt := slices.Clone(proxy.resumedAt)
	proxy.mu.Unlock()
	if last := before[len(before)-1]; len(resumedAt) != 2 || resumedAt[0] != "" || resumedAt[1] != last.ID || last.Status == "done" {
		t.Errorf("Last-Event-ID of the streams let through: %q, after the page took %v; want none, then the id of the last event before the cut (not done)",
			resumedAt, before)
	}
	path, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	if err != nil || path != "/requests/"+id {
		t.Errorf("page address %q (%v); want /requests/%s", path, err, id)
	}
	checkFinished(t, ctx, id, "forest")
	// At 1280×800 the slide comes into view by itself.
	inView, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`(r => r.top < innerHeight && r.bottom > 0)(document.getElementById("slide").getBoundingClientRect())`))
	if err != nil || !inView {
		t.Errorf("the finished slide is not in view at 1280×800 (%v)", err)
	}
	checkAccessible(t, ctx, "finished request")

	// Reload: the request's page shows it again.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitPageStatus(t, ctx, "done")
	checkFinished(t, ctx, id, "forest")
	if events, err = chromedp.Run(ctx, chromedp.Evaluate[[]pageEvent](`window.genpipeEvents`)); err != nil || !slices.Equal(events, want) {
		t.Errorf("events after a reload: %v (%v); want the whole history %v", events, err, want)
	}
	recent, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#recent-list a[href="/requests/`+id+`"]')?.textContent`))
	if err != nil || recent != "A page that survives anything" {
		t.Errorf("recent requests list the request as %q (%v)", recent, err)
	}
	checkDownload(t, ctx, "genpipe-"+id+"-forest.png")
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[int](`for (let i = 0; i < 15; i++) remember({id: "old-" + i, at: new Date(Date.UTC(2020, 0, 1 + i)).toISOString(), status: "done"});
		JSON.parse(localStorage.getItem("genpipe-recent")).length + document.querySelectorAll("#recent-list li").length`))
	if err != nil || kept != 20 {
		t.Errorf("recent requests kept and listed after 16: %d (%v); want 10 and 10", kept, err)
	}
	if out := os.Getenv("GENPIPE_PAGE_SCREENSHOT"); out != "" { // the README's picture of the page
		err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800))
		var shot []byte
		if err == nil {
			shot, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
		}
		if err == nil {
			err = os.WriteFile(out, shot, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}
}

// TestBrowserShowsHowFarARejectedRequestGot opens the page of a request the
// Checking AI rejected: the steps keep what it passed and mark where it
// stopped, by sign and word, and the message says why.
func TestBrowserShowsHowFarARejectedRequestGot(t *testing.T) {
	ctx := browser(t)
	u := uploadImage(t, "image/png", pngImage(t, 10, 10)) // past the page's checks, as another client may
	var a accepted
	call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "Too small"}, nil, &a)
	if v := waitTerminal(t, a.ID, 30*time.Second); v.Status != "rejected" {
		t.Fatalf("request ended %s; want rejected", v.Status)
	}
	openRequestPage(t, ctx, a.ID, "rejected")
	steps, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#steps li")].map(li => li.className + " " + li.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"done ✓received, done", "bad ✗checking: rejected", " ○generating, not reached", " ○done, not reached"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps of a rejected request: %q; want %q", steps, want)
	}
	message, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("message").textContent`))
	if err != nil || !strings.HasPrefix(message, "Error: The image was not accepted.") || !strings.Contains(message, "64") {
		t.Errorf("message of a rejected request: %q (%v)", message, err)
	}
	checkAccessible(t, ctx, "rejected request")

	// A request that is not there (a wrong link, another key's) is said so
	// in words.
	if err := chromedp.Do(ctx, chromedp.Navigate(sys.API+"/requests/00000000-0000-4000-8000-000000000000")); err != nil {
		t.Fatal(err)
	}
	message, err = chromedp.Run(ctx, chromedp.Poll[string](`/Error/.test(document.getElementById("message").textContent) && document.getElementById("message").textContent`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil || !strings.HasPrefix(message, "Error: There is no such request here.") {
		t.Errorf("message for an unknown request: %q (%v)", message, err)
	}
}

// TestBrowserOffersEveryPNGOfADeck opens the page of a request whose
// description continued on further slides: it offers each slide's PNG,
// named after the request and the slide, beside the PDF and PowerPoint.
func TestBrowserOffersEveryPNGOfADeck(t *testing.T) {
	ctx := browser(t)
	u := uploadImage(t, "image/png", pngImage(t, 320, 200))
	long := strings.Repeat("A page shows every slide of a deck, not only the first one. ", 30)
	var a accepted
	call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": long}, nil, &a)
	if v := waitTerminal(t, a.ID, 30*time.Second); v.Status != "done" {
		t.Fatalf("request ended %s; want done", v.Status)
	}
	v, err := apiClient(t).Get(t.Context(), a.ID)
	if err != nil || v.Result == nil || len(v.Result.PNGURLs) < 2 {
		t.Fatalf("GET: %+v, %v; want a deck of at least two slides", v, err)
	}
	openRequestPage(t, ctx, a.ID, "done")
	links, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#links a")].map(a => a.download + " " + a.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	n := len(v.Result.PNGURLs)
	prefix := "genpipe-" + a.ID + "-minimal"
	want := []string{fmt.Sprintf("%s.png Download PNG of slide 1 of %d", prefix, n)}
	for i := 2; i <= n; i++ {
		want = append(want, fmt.Sprintf("%s.%d.png Download PNG of slide %d of %d", prefix, i, i, n))
	}
	want = append(want, prefix+".pdf Download PDF", prefix+".pptx Download PowerPoint")
	if !slices.Equal(links, want) {
		t.Errorf("download links of a deck: %q; want %q", links, want)
	}
	checkAccessible(t, ctx, "deck")
}

// TestBrowserChecksTheFormBeforeUploading submits images the API would
// refuse, and an empty description: the page says what is wrong by each
// field and uploads nothing.
func TestBrowserChecksTheFormBeforeUploading(t *testing.T) {
	ctx := browser(t)
	srv, proxy := newFlakyProxy(t, sys.API)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := []struct {
		name, file, description, field, want string
	}{
		{"tiny image", write("tiny.png", pngImage(t, 10, 10)), "A slide", "image", "The image is 10×10 pixels; it must be at least 64×64."},
		{"wide image", write("wide.png", pngImage(t, 8001, 64)), "A slide", "image", "The image is 8001×64 pixels; it must be at most 8000×8000."},
		{"large file", write("large.png", make([]byte, 10<<20+1)), "A slide", "image", "The image is 10.0 MB; the most is 10 MB."},
		{"not an image", write("notes.txt", []byte("hello")), "A slide", "image", `"notes.txt" is not a PNG or JPEG image.`},
		{"no description", write("fine.png", pngImage(t, 100, 100)), "   ", "description", "Describe your slide."},
	}
	for _, c := range cases {
		err := chromedp.Do(ctx,
			chromedp.Navigate(srv.URL+"/"),
			chromedp.WaitReady(`#style option[value="forest"]`),
			chromedp.SetUploadFiles(`#image`, []string{c.file}),
			chromedp.SendKeys(`#description`, c.description),
			chromedp.Click(`#submit`),
		)
		if err != nil {
			t.Fatalf("%s: submit: %v", c.name, err)
		}
		// The error shows when the image is picked, and again, with the
		// focus on its field, when the form is sent.
		got, err := chromedp.Run(ctx, chromedp.Poll[string](
			`document.activeElement.id === "`+c.field+`" && !document.getElementById("`+c.field+`-error").hidden && document.getElementById("`+c.field+`-error").textContent`,
			chromedp.WithPollingTimeout(20*time.Second)))
		if err != nil || got != c.want {
			t.Errorf("%s: %s error %q (%v); want %q, with the focus on the field", c.name, c.field, got, err, c.want)
		}
		invalid, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("`+c.field+`").getAttribute("aria-invalid")`))
		if err != nil || invalid != "true" {
			t.Errorf("%s: the %s field's aria-invalid is %q (%v); want true", c.name, c.field, invalid, err)
		}
	}
	checkAccessible(t, ctx, "form with an error")
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if n := proxy.uploads; n != 0 {
		t.Errorf("the page asked for %d uploads for forms it should have refused", n)
	}
}

// openRequestPage opens the page of request id and waits until it shows
// the request's final status, which must be status.
func openRequestPage(t *testing.T, ctx context.Context, id, status string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(sys.API+"/requests/"+id)); err != nil {
		t.Fatal(err)
	}
	waitPageStatus(t, ctx, status)
}

// waitPageStatus waits for the page to show status.
func waitPageStatus(t *testing.T, ctx context.Context, status string) {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Poll[string](
		`["done","rejected","failed","canceled","expired"].includes(document.body.dataset.status) && document.body.dataset.status`,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil || got != status {
		message, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("message").textContent`))
		t.Fatalf("page shows %q (%v, message %q); want %s", got, err, message, status)
	}
}

// checkFinished checks the page of a done request: every step done, the
// slide shown, and downloads named after the request and its style.
func checkFinished(t *testing.T, ctx context.Context, id, style string) {
	t.Helper()
	width, err := chromedp.Run(ctx, chromedp.Poll[int](
		`document.getElementById("slide").complete && document.getElementById("slide").naturalWidth`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil || width != 1920 {
		t.Errorf("slide preview width = %d (%v), want 1920", width, err)
	}
	steps, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#steps li.done").length`))
	if err != nil || steps != 4 {
		t.Errorf("%d status steps marked done (%v), want 4", steps, err)
	}
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#links a")].map(a => a.download)`))
	want := []string{"genpipe-" + id + "-" + style + ".png", "genpipe-" + id + "-" + style + ".pdf", "genpipe-" + id + "-" + style + ".pptx"}
	if err != nil || !slices.Equal(names, want) {
		t.Errorf("download names %q (%v); want %q", names, err, want)
	}
}

// checkDownload clicks the page's PNG link and checks that the browser
// saves the slide under name, though the link is on another origin (the
// object store), where browsers ignore a link's download attribute. A
// click is a mouse press at the link's place on the screen, and on a
// loaded machine the page can still move between finding the link and
// pressing: a click that starts no download within clickWait is repeated,
// as a person would, while the page has not left for the file itself
// (which is what the page does when it cannot fetch it).
func checkDownload(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	const clicks, clickWait = 4, 5 * time.Second
	dir := t.TempDir()
	wait, cancel := context.WithTimeout(ctx, clicks*clickWait)
	defer cancel()
	begins := chromedp.Events(wait, cdpbrowser.DownloadWillBegin)
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true)})
		return err
	}))
	if err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	began := make(chan cdpbrowser.EventDownloadWillBegin, 1)
	go func() { // ends with wait
		for ev, err := range begins {
			if err == nil {
				began <- ev
			}
			return
		}
	}()
	var ev cdpbrowser.EventDownloadWillBegin
	for click := 1; ; click++ {
		if err := chromedp.Do(ctx, chromedp.Click(`#png`)); err != nil {
			t.Fatalf("click the PNG download: %v", err)
		}
		var ok bool
		select {
		case ev, ok = <-began:
		case <-time.After(clickWait):
		}
		if ok {
			break
		}
		now, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
		if click == clicks || err != nil || now != page {
			t.Fatalf("no download began after %d clicks on the PNG link (page now at %q, %v)", click, now, err)
		}
		t.Logf("click %d on the PNG link started no download within %s: clicking again", click, clickWait)
	}
	if ev.SuggestedFilename != name {
		t.Errorf("download saved as %q; want %q", ev.SuggestedFilename, name)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, ev.GUID)); err == nil && bytes.HasPrefix(data, []byte("\x89PNG")) {
			return
		}
		select {
		case <-wait.Done():
			t.Fatalf("the download %s did not complete", ev.SuggestedFilename)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// axePath is axe-core, which scripts/test.sh installs (npm ci) from the
// pinned package-lock.json beside it. It is made absolute when the test
// binary starts: the embedded object store changes the working directory.
var axePath, _ = filepath.Abs("testdata/axe/node_modules/axe-core/axe.min.js")

// axeViewports are the sizes the page is checked at: a laptop and a phone.
var axeViewports = []struct {
	name          string
	width, height int64
	mobile        bool
}{{"1280x800", 1280, 800, false}, {"390x844", 390, 844, true}}

// checkAccessible runs axe-core on the page as it is, at each of
// axeViewports, for the WCAG 2.1 A and AA rules, and reports every
// violation. Without axe-core installed the check skips (fails under
// GENPIPE_REQUIRE_BROWSER, as in CI).
func checkAccessible(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	for _, vp := range axeViewports {
		t.Run("axe/"+strings.ReplaceAll(what, " ", "-")+"/"+vp.name, func(t *testing.T) {
			script, err := os.ReadFile(axePath)
			if err != nil {
				if os.Getenv("GENPIPE_REQUIRE_BROWSER") != "" {
					t.Fatalf("axe-core not installed but GENPIPE_REQUIRE_BROWSER is set: %v (run npm ci in cmd/genpipe/testdata/axe)", err)
				}
				t.Skipf("axe-core not installed (%v): run `npm ci --prefix cmd/genpipe/testdata/axe`, as scripts/test.sh does", err)
			}
			emulate := chromedp.EmulateViewport(vp.width, vp.height)
			if vp.mobile {
				emulate = chromedp.EmulateViewport(vp.width, vp.height, chromedp.EmulateMobile)
			}
			if err := chromedp.Do(ctx, emulate); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)) }()
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof axe !== "undefined" || (eval(`+strconv.Quote(string(script))+`), true)`)); err != nil {
				t.Fatalf("inject axe-core: %v", err)
			}
			violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
				.then(r => r.violations.map(v => v.id + " (" + v.impact + "): " + v.help + " — " + v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary).join("; ")))`,
				chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("axe.run: %v", err)
			}
			for _, v := range violations {
				t.Errorf("%s at %s: %s", what, vp.name, v)
			}
		})
	}
}
