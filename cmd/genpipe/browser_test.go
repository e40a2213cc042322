package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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
