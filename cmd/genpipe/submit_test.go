package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/client"
)

// runSubmit runs `genpipe submit` against the test's up with args and
// returns its stdout and exit status (0 without an error).
func runSubmit(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"submit", "-api-url", sys.API}, args...), &stdout, &stderr)
	var exit *exitError
	switch {
	case err == nil:
		return stdout.String(), 0, nil
	case errors.As(err, &exit):
		return stdout.String(), exit.code, err
	}
	return stdout.String(), exitUsage, err // as main exits on any other error
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// submit -wait uploads, submits, follows the request to done and saves
// its three files, named after the request; the image may come before or
// after the flags.
func TestSubmitWaitDownloads(t *testing.T) {
	img := writeFile(t, "photo.png", pngImage(t, 320, 200))
	out := filepath.Join(t.TempDir(), "slides")
	stdout, code, err := runSubmit(t, img, "--style", "neon", "--description", "From the command line", "--title", "CLI", "--wait", "--out", out)
	if code != 0 {
		t.Fatalf("submit -wait: exit %d, %v\n%s", code, err, stdout)
	}
	m := regexp.MustCompile(`(?m)^request ([0-9a-f-]{36})\npage +(\S+)$`).FindStringSubmatch(stdout)
	if m == nil || m[2] != sys.API+"/requests/"+m[1] {
		t.Fatalf("stdout does not give the id and the page:\n%s", stdout)
	}
	// Not a terminal: a plain line per status, in order.
	if !regexp.MustCompile(`(?s)\[1/4\] received.*\[2/4\] checking.*\[3/4\] generating.*\[4/4\] done`).MatchString(stdout) {
		t.Fatalf("progress lines missing:\n%s", stdout)
	}
	base := filepath.Join(out, "genpipe-"+m[1]+"-neon")
	for ext, check := range map[string]func(*testing.T, []byte){".png": checkPNG, ".pdf": checkPDF, ".pptx": checkPPTX} {
		data, err := os.ReadFile(base + ext)
		if err != nil {
			t.Fatalf("%s not saved: %v\n%s", ext, err, stdout)
		}
		check(t, data)
		if !strings.Contains(stdout, "saved   "+base+ext) {
			t.Errorf("stdout does not name %s", base+ext)
		}
	}

	// Without -wait it only submits, and the image may come last.
	stdout, code, err = runSubmit(t, "-style", "minimal", "-description", "fire and forget", img)
	if code != 0 || !strings.HasPrefix(stdout, "request ") || strings.Contains(stdout, "[1/4]") {
		t.Fatalf("submit without -wait: exit %d, %v\n%s", code, err, stdout)
	}
}

// Each way a submission can end has its exit status.
func TestSubmitExitStatuses(t *testing.T) {
	small := writeFile(t, "small.png", pngImage(t, 10, 10))
	text := writeFile(t, "notes.png", []byte("these are notes, not an image"))
	good := writeFile(t, "good.png", pngImage(t, 100, 100))
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"rejected by the Checking AI", []string{small, "-style", "minimal", "-description", "tiny", "-wait", "-out", t.TempDir()}, exitRejected, "64"},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.png"), "-style", "minimal", "-description", "x"}, exitUsage, "no such file"},
		{"not an image", []string{text, "-style", "minimal", "-description", "x"}, exitUsage, "not a PNG or JPEG"},
		{"no image", []string{"-style", "minimal", "-description", "x"}, exitUsage, "one IMAGE"},
		{"no description", []string{good, "-style", "minimal"}, exitUsage, "-description"},
		{"a style the API refuses", []string{good, "-style", "baroque", "-description", "x"}, exitUsage, "unknown style"},
		{"unreachable", []string{good, "-style", "minimal", "-description", "x", "-api-url", "http://127.0.0.1:1"}, exitUnreachable, "connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, code, err := runSubmit(t, c.args...)
			if code != c.code || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("exit %d, %v; want exit %d with an error mentioning %q\n%s", code, err, c.code, c.want, stdout)
			}
		})
	}
}

// On a terminal the progress is one line rewritten in place, ended once.
func TestSubmitProgressOnATerminal(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, tty: true, start: time.Now()}
	p.show(client.Event{Status: genpipe.StatusChecking})
	p.show(client.Event{Status: genpipe.StatusRejected, Error: "image is 10×10"})
	p.end()
	got := out.String()
	if !strings.HasPrefix(got, "\r\033[K[2/4] checking") || !strings.Contains(got, "\r\033[Krejected") ||
		!strings.HasSuffix(got, "image is 10×10\n") || strings.Count(got, "\n") != 1 {
		t.Fatalf("terminal progress = %q", got)
	}
}
