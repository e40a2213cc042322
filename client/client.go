// Package client is a Go client of genpipe's HTTP API (described by
// api/openapi.json): upload an image, submit a slide request, get,
// cancel, follow it live, and download its files. Every error answer is a
// *Problem carrying the API's code and, on 429 and 503, when to retry.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/httpjson"
	"github.com/genpipe/genpipe/internal/invalid"
)

// Defaults of the Client's options.
const (
	// DefaultBaseURL is where `genpipe up` serves the API.
	DefaultBaseURL = "http://127.0.0.1:8080"
	// DefaultReconnects is how many times in a row Follow reconnects a
	// lost event stream before it gives up.
	DefaultReconnects = 8
)

// DefaultReconnectDelay is the backoff between Follow's reconnections,
// unless the server asks for another (an SSE retry field, a Retry-After).
var DefaultReconnectDelay = backoff.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second}

// maxAnswer bounds the JSON answers the client reads: far above any the
// API gives.
const maxAnswer = 8 << 20

// Client calls one genpipe API. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	key        string
	http       *http.Client
	reconnects int
	delay      backoff.Policy
}

type config struct {
	baseURL    string
	key        string
	http       *http.Client
	reconnects int
	delay      backoff.Policy
}

// Option configures a Client.
type Option func(*config)

// WithBaseURL sets the API's base URL (scheme, host, port), overriding
// DefaultBaseURL.
func WithBaseURL(u string) Option { return func(c *config) { c.baseURL = u } }

// WithAPIKey sends key as "Authorization: Bearer KEY" with every API call
// (not with the presigned object store URLs, which carry their own
// signature). The default is none, for an open API.
func WithAPIKey(key string) Option { return func(c *config) { c.key = key } }

// WithHTTPClient sets the HTTP client, overriding http.DefaultClient. Its
// Timeout, if any, bounds event streams too: leave it 0 to Follow
// requests that take long, and bound calls with their context.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.http = hc } }

// WithReconnects sets how many times in a row Follow reconnects a lost
// stream, overriding DefaultReconnects; 0 means never. Less is invalid.
func WithReconnects(n int) Option { return func(c *config) { c.reconnects = n } }

// New returns a Client; an option out of its range is an error naming it.
func New(opts ...Option) (*Client, error) {
	cfg := config{baseURL: DefaultBaseURL, http: http.DefaultClient, reconnects: DefaultReconnects, delay: DefaultReconnectDelay}
	for _, o := range opts {
		o(&cfg)
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.baseURL, "/"))
	check := invalid.New("client")
	check.If(err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "",
		"base URL %q: want http(s)://host[:port]", cfg.baseURL)
	check.If(cfg.http == nil, "HTTP client: want one, not nil")
	check.If(cfg.reconnects < 0, "reconnects %d: want 0 or more", cfg.reconnects)
	if err := check.Err(); err != nil {
		return nil, err
	}
	return &Client{base: base, key: cfg.key, http: cfg.http, reconnects: cfg.reconnects, delay: cfg.delay}, nil
}

// BaseURL returns the API's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Problem is an error answer of the API (RFC 9457 problem details).
type Problem struct {
	Status int    // the HTTP status
	Code   string // the API's stable code ("invalid", "not_found", ...); "" when the answer was not a problem
	Title  string
	Detail string
	// RetryAfter is how long the API asked to wait before retrying (429,
	// 503); 0 when it did not say.
	RetryAfter time.Duration
}

func (p *Problem) Error() string {
	if p.Code == "" {
		return fmt.Sprintf("%d %s: %s", p.Status, http.StatusText(p.Status), p.Detail)
	}
	return fmt.Sprintf("%s (%d): %s", p.Code, p.Status, p.Detail)
}

// Temporary reports whether retrying later may succeed: 429 and 503.
func (p *Problem) Temporary() bool {
	return p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable
}

// problemOf reads an error answer.
func problemOf(resp *http.Response) *Problem {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	p := &Problem{Status: resp.StatusCode}
	if d, ok := httpjson.RetryAfter(resp.Header, time.Now()); ok {
		p.RetryAfter = d
	}
	var body httpjson.Problem
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); strings.HasSuffix(mt, "json") && json.Unmarshal(data, &body) == nil && body.Code != "" {
		p.Code, p.Title, p.Detail = body.Code, body.Title, body.Detail
		return p
	}
	p.Title, p.Detail = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
	return p
}

// do sends an API call with a JSON body (none if nil) and decodes a JSON
// answer of status want into out; another status is a *Problem.
func (c *Client) do(ctx context.Context, method, path string, headers http.Header, body, out any, want int) error {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return problemOf(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

// Upload is an upload URL: PUT the image to URL with Method and exactly
// Headers, then submit ObjectID.
type Upload struct {
	ObjectID  string            `json:"objectId"`
	URL       string            `json:"uploadUrl"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

// CreateUpload asks for an upload URL for an image of contentType
// ("image/png" or "image/jpeg") and size bytes.
func (c *Client) CreateUpload(ctx context.Context, contentType string, size int64) (*Upload, error) {
	var u Upload
	err := c.do(ctx, http.MethodPost, "/v1/uploads", nil, map[string]any{"contentType": contentType, "contentLength": size}, &u, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// UploadImage uploads an image: an upload URL, then the PUT of image to
// it, straight to the object store. It returns the objectId to submit.
func (c *Client) UploadImage(ctx context.Context, contentType string, image []byte) (string, error) {
	u, err := c.CreateUpload(ctx, contentType, int64(len(image)))
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, u.Method, u.URL, bytes.NewReader(image))
	if err != nil {
		return "", fmt.Errorf("upload URL: %w", err)
	}
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(image))
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload the image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		p := problemOf(resp)
		return "", fmt.Errorf("upload the image: the object store answered %w", p)
	}
	return u.ObjectID, nil
}

// Submission is a slide request.
type Submission struct {
	ObjectID    string // from UploadImage
	Style       string // a style id (Styles)
	Title       string // optional: the description's first line
	Description string
	WebhookURL  string // optional
	Priority    genpipe.Priority
	// StartBy or MaxWait, optional, is the latest its AI calls may start.
	StartBy time.Time
	MaxWait time.Duration
	// IdempotencyKey, optional, makes a retry of Submit safe: the same key
	// gets the same request.
	IdempotencyKey string
}

// Submit submits a slide request; the API has queued it durably when
// Submit returns.
func (c *Client) Submit(ctx context.Context, s Submission) (*genpipe.Accepted, error) {
	body := genpipe.SubmitBody{ObjectID: s.ObjectID, Style: s.Style, Title: s.Title, Description: s.Description,
		WebhookURL: s.WebhookURL, Priority: string(s.Priority)}
	if !s.StartBy.IsZero() {
		body.StartBy = s.StartBy.UTC().Format(time.RFC3339Nano)
	}
	if s.MaxWait > 0 {
		seconds := int64((s.MaxWait + time.Second - 1) / time.Second)
		body.MaxWaitSeconds = &seconds
	}
	var headers http.Header
	if s.IdempotencyKey != "" {
		headers = http.Header{"Idempotency-Key": {s.IdempotencyKey}}
	}
	var a genpipe.Accepted
	if err := c.do(ctx, http.MethodPost, "/v1/requests", headers, body, &a, http.StatusAccepted); err != nil {
		return nil, err
	}
	return &a, nil
}

// Get returns a request; a done one carries fresh links to its files.
func (c *Client) Get(ctx context.Context, id string) (*genpipe.RequestView, error) {
	var v genpipe.RequestView
	if err := c.do(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, nil, &v, http.StatusOK); err != nil {
		return nil, err
	}
	return &v, nil
}

// Cancel cancels a request that has not ended and returns it; a request
// that ended otherwise is a *Problem with code "conflict".
func (c *Client) Cancel(ctx context.Context, id string) (*genpipe.RequestView, error) {
	var v genpipe.RequestView
	if err := c.do(ctx, http.MethodDelete, "/v1/requests/"+url.PathEscape(id), nil, nil, &v, http.StatusOK); err != nil {
		return nil, err
	}
	return &v, nil
}

// Styles lists the styles a request may name.
func (c *Client) Styles(ctx context.Context) ([]genpipe.Style, error) {
	var styles []genpipe.Style
	if err := c.do(ctx, http.MethodGet, "/v1/styles", nil, nil, &styles, http.StatusOK); err != nil {
		return nil, err
	}
	return styles, nil
}

// Download copies the file at a result link (a presigned URL) to w and
// returns its size.
func (c *Client) Download(ctx context.Context, link string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download: %w", problemOf(resp))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download: %w", err)
	}
	return n, nil
}

// DownloadResult saves a done request's files in dir as NAME.png,
// NAME.pdf and NAME.pptx, and a deck's further slides as NAME.2.png, ...,
// and returns their paths. A file is written
// under a temporary name and renamed once whole, so a failed download
// leaves no partial file under the final name.
func (c *Client) DownloadResult(ctx context.Context, result *genpipe.ResultView, dir, name string) ([]string, error) {
	if result == nil {
		return nil, fmt.Errorf("download: the request has no result")
	}
	files := []struct{ link, ext string }{{result.PNGURL, ".png"}, {result.PDFURL, ".pdf"}, {result.PPTXURL, ".pptx"}}
	for i := 1; i < len(result.PNGURLs); i++ { // a deck's further slides: name.2.png, ...
		files = append(files, struct{ link, ext string }{result.PNGURLs[i], "." + strconv.Itoa(i+1) + ".png"})
	}
	var paths []string
	for _, f := range files {
		path := filepath.Join(dir, name+f.ext)
		if err := c.downloadFile(ctx, f.link, path); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func (c *Client) downloadFile(ctx context.Context, link, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("download %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())              // after the rename, nothing is there
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp's 0600 is for secrets, not slides
		tmp.Close()
		return fmt.Errorf("download %s: %w", filepath.Base(path), err)
	}
	if _, err := c.Download(ctx, link, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("download %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("download %s: %w", filepath.Base(path), err)
	}
	return nil
}
