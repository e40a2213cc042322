package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
)

const (
	keyA = "test-key-a-7d1f0c9e4b2a48e6b5c3"
	keyB = "test-key-b-2e8a6f1d0c9b47a3a1f4"
)

func bearer(key string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + key}
}

// checkProblem fails unless resp is a problem+json answer with status and
// a detail containing detail.
func checkProblem(t *testing.T, what string, resp *http.Response, body map[string]any, status int, detail string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s: %s %s %v; want %d problem+json", what, resp.Status, resp.Header.Get("Content-Type"), body, status)
	}
	if got, _ := body["detail"].(string); !strings.Contains(got, detail) || body["status"] != float64(status) {
		t.Fatalf("%s: problem %v; want status %d and a detail containing %q", what, body, status, detail)
	}
}

func TestAPIKeysRequired(t *testing.T) {
	f := newFixture(t, api.WithAPIKeys(keyA, keyB))
	for _, c := range []struct {
		name, authorization, challenge string
	}{
		{"no header", "", `Bearer realm="genpipe"`},
		{"another scheme", "Basic " + keyA, `Bearer realm="genpipe"`},
		{"unknown key", "Bearer " + keyA + "x", `Bearer realm="genpipe", error="invalid_token"`},
		{"scheme only", "Bearer ", `Bearer realm="genpipe"`}, // the trailing space does not survive HTTP
		{"blank key", "Bearer  \t ", `Bearer realm="genpipe"`},
		{"padded key", "Bearer  " + keyA + "x ", `Bearer realm="genpipe", error="invalid_token"`},
		{"huge key", "Bearer " + strings.Repeat("k", 4096), `Bearer realm="genpipe", error="invalid_token"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			headers := map[string]string{}
			if c.authorization != "" {
				headers["Authorization"] = c.authorization
			}
			for _, path := range []string{"/v1/styles", "/v1/requests/" + uuid.NewString(), "/v1/requests/" + uuid.NewString() + "/events"} {
				resp, body := f.do(t, http.MethodGet, path, nil, headers)
				checkProblem(t, "GET "+path, resp, body, http.StatusUnauthorized, "key")
				if got := resp.Header.Get("WWW-Authenticate"); got != c.challenge {
					t.Errorf("GET %s: WWW-Authenticate %q; want %q", path, got, c.challenge)
				}
			}
			for _, path := range []string{"/v1/uploads", "/v1/requests"} {
				resp, body := f.do(t, http.MethodPost, path, map[string]string{"contentType": "image/png"}, headers)
				checkProblem(t, "POST "+path, resp, body, http.StatusUnauthorized, "key")
			}
		})
	}
	for _, path := range []string{"/healthz", "/"} { // not part of the API: the page asks for the key itself
		if resp, _ := f.do(t, http.MethodGet, path, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a key: %s; want 200", path, resp.Status)
		}
	}
	if resp, _ := f.do(t, http.MethodGet, "/v1/styles", nil, map[string]string{"Authorization": "bearer " + keyB}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/styles with a valid key (scheme in lowercase): %s; want 200", resp.Status)
	}
}

// A request is visible to the key that made it only; to another key it
// is as unknown as an id never used, so ids cannot be probed.
func TestAPIKeysOwnRequests(t *testing.T) {
	f := newFixture(t, api.WithAPIKeys(keyA, keyB))
	resp, upload := f.do(t, http.MethodPost, "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": 100}, bearer(keyA))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads with a key: %s %v", resp.Status, upload)
	}
	body := map[string]string{"objectId": uploaded(t, keyA), "style": "minimal", "description": "mine only"}
	resp, accepted := f.do(t, http.MethodPost, "/v1/requests", body, bearer(keyA))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests with key A: %s %v", resp.Status, accepted)
	}
	id := accepted["id"].(string)

	if resp, view := f.do(t, http.MethodGet, "/v1/requests/"+id, nil, bearer(keyA)); resp.StatusCode != http.StatusOK || view["id"] != id {
		t.Fatalf("GET own request: %s %v; want 200", resp.Status, view)
	}
	unknownID := uuid.NewString()
	_, unknown := f.do(t, http.MethodGet, "/v1/requests/"+unknownID, nil, bearer(keyB))
	for _, path := range []string{"/v1/requests/" + id, "/v1/requests/" + id + "/events"} {
		resp, other := f.do(t, http.MethodGet, path, nil, bearer(keyB))
		checkProblem(t, "GET with another key "+path, resp, other, http.StatusNotFound, "not found")
		if strings.ReplaceAll(other["detail"].(string), id, "ID") != strings.ReplaceAll(unknown["detail"].(string), unknownID, "ID") {
			t.Errorf("another key's request reads %q, an unknown one %q: they must not differ but for the id", other["detail"], unknown["detail"])
		}
	}
	stream := f.openStream(t, id, keyA)
	stream.Body.Close()

	// The store keeps a hash of the key as the owner, never the key.
	stored, err := f.store.Request(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(keyA))
	if stored.Owner != hex.EncodeToString(sum[:]) {
		t.Errorf("stored owner %q; want the hex SHA-256 of the key", stored.Owner)
	}
	files, _ := filepath.Glob(f.env.StorePath + "*")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(keyA)) {
			t.Errorf("database file %s holds the API key itself", filepath.Base(file))
		}
	}
}

func (f *fixture) openStream(t *testing.T, id, key string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.server.URL+"/v1/requests/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE of own request: %s %s; want 200 text/event-stream", resp.Status, resp.Header.Get("Content-Type"))
	}
	return resp
}

// Two keys may use one Idempotency-Key without meeting: each gets its own
// request, and each retry its own answer.
func TestAPIKeysScopeIdempotencyKeys(t *testing.T) {
	f := newFixture(t, api.WithAPIKeys(keyA, keyB))
	body := map[string]string{"objectId": uploaded(t, keyA, keyB), "style": "minimal", "description": "same body, same key"}
	ids := map[string]any{}
	for _, key := range []string{keyA, keyB, keyA, keyB} {
		headers := bearer(key)
		headers["Idempotency-Key"] = "shared-idempotency-key"
		resp, out := f.do(t, http.MethodPost, "/v1/requests", body, headers)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST with key %s: %s %v", key, resp.Status, out)
		}
		if first, ok := ids[key]; ok && first != out["id"] {
			t.Fatalf("retry with key %s got id %v; first got %v", key, out["id"], first)
		}
		ids[key] = out["id"]
	}
	if ids[keyA] == ids[keyB] {
		t.Fatalf("two keys with one Idempotency-Key share request %v", ids[keyA])
	}
}

// Webhook URLs that point inside a network are refused unless allowed,
// whether the host is such an address or a name that resolves to one.
func TestWebhookPrivateAddressesRefused(t *testing.T) {
	f := newFixture(t)
	objectID := uploaded(t)
	for _, hook := range []string{
		"http://127.0.0.1:8080/hook",
		"http://localhost/hook", // a name: resolved
		"http://[::1]/hook",
		"http://10.1.2.3/hook",
		"http://172.16.0.9/hook",
		"https://192.168.1.1/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1%25eth0]/hook",
		"http://[fd12:3456::1]/hook",
		"http://0.0.0.0:9000/hook",
		"http://224.0.0.1/hook",
		"http://[::ffff:127.0.0.1]/hook",
		"http://100.100.100.200/hook",
		// IPv6 forms that carry an IPv4 address, and special-purpose ranges
		"http://[::127.0.0.1]/hook",
		"http://[::ffff:0:127.0.0.1]/hook",
		"http://[64:ff9b::127.0.0.1]/hook",
		"http://[64:ff9b::169.254.169.254]/hook",
		"http://[64:ff9b:1::808:808]/hook",
		"http://[2002:7f00:1::1]/hook",
		"http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
		"http://192.0.0.1/hook",
		"http://192.0.2.1/hook",
		"http://198.18.0.1/hook",
		"http://198.51.100.1/hook",
		"http://203.0.113.1/hook",
		"http://240.0.0.1/hook",
		"http://255.255.255.255/hook",
		"http://[2001:db8::1]/hook",
	} {
		resp, out := f.post(t, map[string]string{"objectId": objectID, "style": "minimal", "description": "d", "webhookUrl": hook}, "")
		checkProblem(t, hook, resp, out, http.StatusBadRequest, "webhooks may not call private networks")
	}
	resp, out := f.post(t, map[string]string{"objectId": objectID, "style": "minimal", "description": "d",
		"webhookUrl": "https://93.184.215.14/hook"}, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("public webhook address: %s %v; want 202", resp.Status, out)
	}

	allowing := newFixture(t, api.WithAllowPrivateWebhooks(true))
	resp, out = allowing.post(t, map[string]string{"objectId": objectID, "style": "minimal", "description": "d",
		"webhookUrl": "http://127.0.0.1:8080/hook"}, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("loopback webhook with private webhooks allowed: %s %v; want 202", resp.Status, out)
	}
}

// Every input has a size limit, and each refusal says which.
func TestInputSizeLimits(t *testing.T) {
	const maxUpload = 4096
	f := newFixture(t, api.WithMaxUploadSize(maxUpload))
	uploads := []struct {
		length int64
		status int
		detail string
	}{
		{maxUpload + 1, http.StatusRequestEntityTooLarge, "the most is 4096"},
		{-1, http.StatusBadRequest, "contentLength"},
		{0, http.StatusBadRequest, "contentLength is required"},
	}
	for _, c := range uploads {
		resp, out := f.do(t, http.MethodPost, "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": c.length}, nil)
		checkProblem(t, "upload declaring its length", resp, out, c.status, c.detail)
	}
	if resp, out := f.do(t, http.MethodPost, "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": maxUpload}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload of the largest size: %s %v; want 201", resp.Status, out)
	}

	// An upload made before upload URLs were signed for their size, or
	// under a higher limit, is checked when a request uses it.
	big := uuid.NewString()
	if err := f.env.Objects.Put(t.Context(), genpipe.UploadKey("", big), genpipe.ContentTypePNG, noisyPNG(t, 64)); err != nil {
		t.Fatal(err)
	}
	resp, out := f.post(t, map[string]string{"objectId": big, "style": "minimal", "description": "too big"}, "")
	checkProblem(t, "request with an oversized upload", resp, out, http.StatusRequestEntityTooLarge, "the most is 4096")

	valid := func(field, value string) map[string]string {
		m := map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "d"}
		m[field] = value
		return m
	}
	for _, c := range []struct {
		name   string
		body   map[string]string
		key    string
		detail string
	}{
		{"long title", valid("title", strings.Repeat("t", 201)), "", "title is over 200"},
		{"long webhook URL", valid("webhookUrl", "https://93.184.215.14/"+strings.Repeat("p", 2048)), "", "over 2048"},
		{"long Idempotency-Key", valid("style", "minimal"), strings.Repeat("k", 201), "Idempotency-Key is over 200"},
		{"control character", valid("description", "nul\x00byte"), "", "control character"},
		{"non-ASCII Idempotency-Key", valid("style", "minimal"), "ключ", "printable ASCII"},
		{"non-canonical objectId", valid("objectId", "{"+uuid.NewString()+"}"), "", "not an id"},
	} {
		resp, out := f.post(t, c.body, c.key)
		checkProblem(t, c.name, resp, out, http.StatusBadRequest, c.detail)
	}
}

// noisyPNG is a side×side PNG that does not compress: a few bytes a pixel.
func noisyPNG(t *testing.T, side int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	x := uint32(1)
	for i := range img.Pix {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		img.Pix[i] = uint8(x)
	}
	img.Set(0, 0, color.RGBA{A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// An objectId belongs to the API key that asked for its upload URL: to
// another key it is as unknown as an id never uploaded, so ids cannot be
// probed or borrowed.
func TestObjectIDsBelongToTheirKey(t *testing.T) {
	f := newFixture(t, api.WithAPIKeys(keyA, keyB))
	img := noisyPNG(t, 70)
	resp, upload := f.do(t, http.MethodPost, "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(img)}, bearer(keyA))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads: %s %v", resp.Status, upload)
	}
	if code := putUpload(t, upload, img); code != http.StatusOK {
		t.Fatalf("PUT upload: %d; want 200", code)
	}
	objectID := upload["objectId"].(string)
	body := map[string]string{"objectId": objectID, "style": "minimal", "description": "whose image?"}

	resp, other := f.do(t, http.MethodPost, "/v1/requests", body, bearer(keyB))
	checkProblem(t, "key B submitting key A's objectId", resp, other, http.StatusUnprocessableEntity, "never uploaded")
	unknown := map[string]string{"objectId": "0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a", "style": "minimal", "description": "whose image?"}
	_, never := f.do(t, http.MethodPost, "/v1/requests", unknown, bearer(keyB))
	if strings.ReplaceAll(other["detail"].(string), objectID, "ID") != strings.ReplaceAll(never["detail"].(string), unknown["objectId"], "ID") {
		t.Errorf("another key's objectId reads %q, one never uploaded %q: they must not differ but for the id", other["detail"], never["detail"])
	}
	if resp, out := f.do(t, http.MethodPost, "/v1/requests", body, bearer(keyA)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("key A submitting its own objectId: %s %v; want 202", resp.Status, out)
	}
}

// putUpload PUTs body to an upload answer's URL with the headers it names
// and returns the object store's status code.
func putUpload(t *testing.T, upload map[string]any, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, upload["uploadUrl"].(string), bytes.NewReader(body))
	for k, v := range upload["headers"].(map[string]any) {
		req.Header.Set(k, v.(string))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A request is made from the image it was submitted with: its upload URL
// writes once, so a PUT through it afterwards is refused (412) and changes
// nothing, the request reads the upload where it is (no copy), and a
// retry of the submission gets the same request.
func TestSubmissionPinsTheUpload(t *testing.T) {
	f := newFixture(t)
	first, second := noisyPNG(t, 70), noisyPNG(t, 70)
	second[len(second)/2] ^= 0xff // same size, other bytes
	resp, upload := f.do(t, http.MethodPost, "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(first)}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads: %s %v", resp.Status, upload)
	}
	if code := putUpload(t, upload, first); code != http.StatusOK {
		t.Fatalf("PUT upload: %d; want 200", code)
	}
	objectID := upload["objectId"].(string)
	body := map[string]string{"objectId": objectID, "style": "minimal", "description": "pinned"}
	resp, accepted := f.post(t, body, "pin-me")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests: %s %v", resp.Status, accepted)
	}
	id := accepted["id"].(string)

	if code := putUpload(t, upload, second); code != http.StatusPreconditionFailed {
		t.Errorf("PUT to the upload URL after submission: %d; want 412", code)
	}
	if _, again := f.post(t, body, "pin-me"); again["id"] != id {
		t.Fatalf("retry got %v, want %s", again["id"], id)
	}
	r, err := f.store.Request(t.Context(), id)
	if err != nil || r.Image != genpipe.UploadKey("", objectID) {
		t.Fatalf("the request reads its image from %q (%v); want its upload %s", r.Image, err, genpipe.UploadKey("", objectID))
	}
	if got, err := f.env.Objects.Get(t.Context(), r.Image); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("the request's image is %d bytes (%v), not the image it was submitted with", len(got), err)
	}
	if _, err := f.env.Objects.Stat(t.Context(), genpipe.InputKey(id)); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
		t.Errorf("the upload was copied to %s (%v); want it read where it is", genpipe.InputKey(id), err)
	}
}

// A request made from an upload of before upload URLs were write-once
// (genpipe.LegacyUploadKey), which its URL could still overwrite, reads a
// copy the API made when it accepted the request (genpipe.InputKey).
func TestSubmissionCopiesALegacyUpload(t *testing.T) {
	f := newFixture(t)
	objectID, image := uuid.NewString(), noisyPNG(t, 70)
	if err := f.env.Objects.Put(t.Context(), genpipe.LegacyUploadKey("", objectID), genpipe.ContentTypePNG, image); err != nil {
		t.Fatal(err)
	}
	resp, accepted := f.post(t, map[string]string{"objectId": objectID, "style": "minimal", "description": "legacy"}, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests: %s %v", resp.Status, accepted)
	}
	id := accepted["id"].(string)
	if r, err := f.store.Request(t.Context(), id); err != nil || r.Image != "" {
		t.Fatalf("the request reads its image from %q (%v); want its copy", r.Image, err)
	}
	if got, err := f.env.Objects.Get(t.Context(), genpipe.InputKey(id)); err != nil || !bytes.Equal(got, image) {
		t.Fatalf("the request's input is %d bytes (%v), not its upload", len(got), err)
	}
}
