package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	_ "image/jpeg" // image.DecodeConfig of a JPEG
	_ "image/png"  // and of a PNG
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/client"
)

const submitUsage = `Usage: genpipe submit IMAGE -style ID -description TEXT [flags]

submit sends a slide request to a running genpipe API: it uploads IMAGE
(PNG or JPEG), submits the request and prints its id and its page. With
-wait it follows the request live, a progress line on a terminal (plain
lines otherwise), and once done downloads the slide into -out as
genpipe-ID-STYLE.png, .pdf and .pptx.

Exit status:
  0  submitted (without -wait), or done and downloaded
  1  another error: the API refused the key, a download failed, interrupted
  2  bad usage or input: a flag, the image (missing, not PNG or JPEG), or a
     field the API refused
  3  rejected: the Checking AI refused the image
  4  failed
  5  canceled or expired
  6  unreachable: the API did not answer, or answered it is unavailable

`

// Exit statuses of genpipe submit (see submitUsage).
const (
	exitOther       = 1
	exitUsage       = 2
	exitRejected    = 3
	exitFailed      = 4
	exitEnded       = 5 // canceled or expired
	exitUnreachable = 6
)

// exitError is an error with the exit status the command should end with;
// main prints it (when it has a message) and exits with code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

type submitConfig struct {
	common
	APIURL, APIKey     string
	Style, Description string
	Title, Webhook     string
	Wait               bool
	Out                string
}

func (c *submitConfig) register(f *flags) {
	c.common.register(f)
	f.String(&c.APIURL, "api-url", "GENPIPE_API_URL", client.DefaultBaseURL, "the genpipe API's base URL", httpURL)
	f.Secret(&c.APIKey, "api-key", "GENPIPE_API_KEY", "API key, sent as Authorization: Bearer KEY; none for an open API")
	f.String(&c.Style, "style", "", "", "style id, as GET /v1/styles lists them (corporate, minimal, ...)", nonEmpty)
	f.String(&c.Description, "description", "", "", "the slide's text (up to 2000 characters)", nonEmpty)
	f.String(&c.Title, "title", "", "", "the slide's title; default the description's first line")
	f.String(&c.Webhook, "webhook", "", "", "a URL the service POSTs the request to once it ends")
	f.Bool(&c.Wait, "wait", "", false, "follow the request until it ends and download the slide")
	f.String(&c.Out, "out", "", ".", "with -wait, the directory the slide's files are saved in")
}

func cmdSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg submitConfig
	fs := newFlags("submit", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, submitUsage); fs.PrintDefaults() }
	cfg.register(fs)
	// The image may come before the flags, as the usage line has it,
	// after them or among them.
	flagArgs, images, err := splitArgs(fs, args)
	if err == nil {
		err = fs.Parse(flagArgs)
	}
	if err != nil {
		return err // main exits 2, exitUsage
	}
	if len(images) != 1 {
		fs.Usage()
		return &exitError{exitUsage, fmt.Errorf("submit: want one IMAGE, got %d", len(images))}
	}
	img, contentType, err := readImage(images[0])
	if err != nil {
		return &exitError{exitUsage, err}
	}
	c, err := client.New(client.WithBaseURL(cfg.APIURL), client.WithAPIKey(cfg.APIKey))
	if err != nil {
		return &exitError{exitUsage, err}
	}
	return submit(ctx, c, cfg, img, contentType, stdout, stderr)
}

// splitArgs separates the flags of args from the other arguments, which
// the flag package would take only after the last flag.
func splitArgs(fs *flags, args []string) (flagArgs, others []string, err error) {
	for rest := args; len(rest) > 0; {
		if err := fs.FlagSet.Parse(rest); errors.Is(err, flag.ErrHelp) {
			return append(flagArgs, rest...), others, nil // fs.Parse reads the variables first, then helps
		} else if err != nil {
			return nil, nil, err
		}
		consumed := rest[:len(rest)-fs.NArg()]
		flagArgs = append(flagArgs, consumed...)
		rest = fs.Args()
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return flagArgs, append(others, rest...), nil
		}
		if len(rest) > 0 {
			others, rest = append(others, rest[0]), rest[1:]
		}
	}
	return flagArgs, others, nil
}

// maxImageFile bounds the image submit reads: above any upload limit a
// service would set (the API's default is 10 MiB and refuses more itself).
const maxImageFile = 64 << 20

// readImage reads a PNG or JPEG file whole and returns its content type;
// anything else is an error that says what the file is not.
func readImage(path string) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("submit: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxImageFile+1))
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("submit: read %s: %w", path, err)
	case len(data) > maxImageFile:
		return nil, "", fmt.Errorf("submit: %s is over %d MiB", path, maxImageFile>>20)
	}
	contentType := http.DetectContentType(data)
	if contentType != genpipe.ContentTypePNG && contentType != genpipe.ContentTypeJPEG {
		return nil, "", fmt.Errorf("submit: %s is not a PNG or JPEG image (it looks like %s)", path, contentType)
	}
	if _, _, err := image.DecodeConfig(bytes.NewReader(data)); err != nil {
		return nil, "", fmt.Errorf("submit: %s is not a readable %s image: %v", path, strings.TrimPrefix(contentType, "image/"), err)
	}
	return data, contentType, nil
}

// submit uploads, submits, and with cfg.Wait follows and downloads.
func submit(ctx context.Context, c *client.Client, cfg submitConfig, img []byte, contentType string, stdout, stderr io.Writer) error {
	objectID, err := c.UploadImage(ctx, contentType, img)
	if err != nil {
		return apiExit("upload the image", err)
	}
	accepted, err := c.Submit(ctx, client.Submission{ObjectID: objectID, Style: cfg.Style, Title: cfg.Title,
		Description: cfg.Description, WebhookURL: cfg.Webhook})
	if err != nil {
		return apiExit("submit", err)
	}
	page := c.BaseURL() + "/requests/" + accepted.ID
	fmt.Fprintf(stdout, "request %s\npage    %s\n", accepted.ID, page)
	if !cfg.Wait {
		return nil
	}
	bar := newProgress(stdout, time.Now())
	final, err := c.Follow(ctx, accepted.ID, func(ev client.Event) error {
		bar.show(ev)
		return nil
	})
	bar.end()
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{exitOther, fmt.Errorf("submit: interrupted; request %s goes on: see %s", accepted.ID, page)}
		}
		return apiExit("follow request "+accepted.ID, err)
	}
	if code := endStatus(final.Status); code != 0 {
		return &exitError{code, fmt.Errorf("request %s %s: %s", accepted.ID, final.Status, final.Error)}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return &exitError{exitOther, fmt.Errorf("submit: %w", err)}
	}
	paths, err := c.DownloadResult(ctx, final.Result, cfg.Out, "genpipe-"+accepted.ID+"-"+cfg.Style)
	for _, p := range paths {
		fmt.Fprintf(stdout, "saved   %s\n", p)
	}
	if err != nil {
		return &exitError{exitOther, err}
	}
	return nil
}

// endStatus is the exit status of a request that ended with s.
func endStatus(s genpipe.Status) int {
	switch s {
	case genpipe.StatusDone:
		return 0
	case genpipe.StatusRejected:
		return exitRejected
	case genpipe.StatusFailed:
		return exitFailed
	}
	return exitEnded
}

// apiExit is the exit status of an API call that failed: a field refused
// is bad input, an API that does not answer (or answers it is
// unavailable) is unreachable, anything else is another error.
func apiExit(what string, err error) error {
	err = fmt.Errorf("submit: %s: %w", what, err)
	var p *client.Problem
	var netErr net.Error
	switch {
	case errors.As(err, &p):
		switch p.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
			return &exitError{exitUsage, err}
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
			return &exitError{exitUnreachable, err}
		}
	case errors.As(err, &netErr):
		return &exitError{exitUnreachable, err}
	}
	return &exitError{exitOther, err}
}

// progress shows a request's status as it changes: one line rewritten in
// place on a terminal, a line per change otherwise (a log, a pipe).
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	shown bool
}

func newProgress(w io.Writer, start time.Time) *progress {
	return &progress{w: w, tty: isTerminal(w), start: start}
}

// steps are the statuses of a request that goes well, for "2/4".
var steps = []genpipe.Status{genpipe.StatusReceived, genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone}

func (p *progress) show(ev client.Event) {
	line := fmt.Sprintf("%-10s %5.1fs", ev.Status, time.Since(p.start).Seconds())
	for i, s := range steps {
		if s == ev.Status {
			line = fmt.Sprintf("[%d/%d] %s", i+1, len(steps), line)
		}
	}
	if ev.Error != "" {
		line += "  " + ev.Error
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.shown = true
}

// end ends the line being rewritten.
func (p *progress) end() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether w is a character device, a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
