package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

// fakeObjects is an object store that holds sizes only and counts the
// calls a submission makes.
type fakeObjects struct {
	genpipe.ObjectStore // the methods the tests do not call

	mu                     sync.Mutex
	size                   map[string]int64
	copies, stats, deletes int
}

func (f *fakeObjects) PresignPut(_ context.Context, key string, _ genpipe.PutHeaders, _ time.Duration) (string, error) {
	return "http://objects.test/" + key, nil
}

func (f *fakeObjects) Copy(_ context.Context, src, dst string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copies++
	n, ok := f.size[src]
	if !ok {
		return genpipe.Errorf(genpipe.ENOTFOUND, "no %s", src)
	}
	f.size[dst] = n
	return nil
}

func (f *fakeObjects) Stat(_ context.Context, key string) (genpipe.ObjectInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats++
	n, ok := f.size[key]
	if !ok {
		return genpipe.ObjectInfo{}, genpipe.Errorf(genpipe.ENOTFOUND, "no %s", key)
	}
	return genpipe.ObjectInfo{Key: key, Size: n}, nil
}

func (f *fakeObjects) Delete(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	delete(f.size, key)
	return nil
}

func (f *fakeObjects) calls() (copies, stats, deletes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.copies, f.stats, f.deletes
}

// A submission reads its write-once upload where it is, with at most one
// call to the object store: a stat of the upload the first time this
// server sees it submitted, none after (it cannot change). An upload from
// before upload URLs were write-once is copied to the request's input and
// its copy's size read. One over the limit is refused either way, a copy
// deleted.
func TestPinInputWriteOnceUploads(t *testing.T) {
	objects := &fakeObjects{size: map[string]int64{}}
	s := &Server{objects: objects, uploads: newKnownUploads(),
		cfg: config{maxUpload: 1000, maxBody: 1 << 10, uploadTTL: time.Minute, now: time.Now, logger: slog.New(slog.DiscardHandler)}}
	pin := func(id, objectID string) (*genpipe.Request, error) {
		req := &genpipe.Request{ID: id, Job: genpipe.Job{ObjectID: objectID}}
		return req, s.pinInput(t.Context(), req)
	}
	wantCalls := func(what string, copies, stats, deletes int) {
		t.Helper()
		if c, st, d := objects.calls(); c != copies || st != stats || d != deletes {
			t.Errorf("%s: %d copies, %d stats, %d deletes; want %d, %d, %d", what, c, st, d, copies, stats, deletes)
		}
	}

	// Issued here: signed write-once; the client's PUT stores it.
	rec := httptest.NewRecorder()
	s.createUpload(rec, httptest.NewRequest(http.MethodPost, "/v1/uploads",
		strings.NewReader(`{"contentType":"image/png","contentLength":600}`)))
	if rec.Code != http.StatusCreated || !strings.Contains(rec.Body.String(), `"If-None-Match":"*"`) {
		t.Fatalf("POST /v1/uploads: %d %s; want 201 with If-None-Match: * to send", rec.Code, rec.Body)
	}
	objectID := rec.Body.String()[len(`{"objectId":"`):][:36]
	if _, err := pin("11111111-1111-4111-8111-111111111111", objectID); genpipe.ErrorCode(err) != genpipe.EUNPROCESSABLE {
		t.Errorf("pinInput before the PUT: %v; want %s", err, genpipe.EUNPROCESSABLE)
	}
	objects.size[genpipe.UploadKey("", objectID)] = 600 // the client's PUT
	wantCalls("a submission before the PUT", 1, 1, 0)   // the stat, then the legacy copy that finds nothing
	for _, id := range []string{"22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"} {
		req, err := pin(id, objectID)
		if err != nil || req.Image != genpipe.UploadKey("", objectID) {
			t.Fatalf("pinInput of a write-once upload: image %q, %v; want %q", req.Image, err, genpipe.UploadKey("", objectID))
		}
	}
	wantCalls("two submissions of one upload", 1, 2, 0)

	// Lowered limit: the known upload is refused without a read.
	s.cfg.maxUpload = 500
	if _, err := pin("44444444-4444-4444-8444-444444444444", objectID); genpipe.ErrorCode(err) != genpipe.ETOOLARGE {
		t.Errorf("pinInput of an upload over today's limit: %v; want %s", err, genpipe.ETOOLARGE)
	}
	wantCalls("an upload over the limit", 1, 2, 0)
	s.cfg.maxUpload = 1000

	// Uploaded through another API process: its size is read once.
	other := "55555555-5555-4555-8555-555555555555"
	objects.size[genpipe.UploadKey("", other)] = 2000
	if _, err := pin("66666666-6666-4666-8666-666666666666", other); genpipe.ErrorCode(err) != genpipe.ETOOLARGE {
		t.Errorf("pinInput of a large upload signed elsewhere: %v; want %s", err, genpipe.ETOOLARGE)
	}
	wantCalls("an upload signed elsewhere", 1, 3, 0)

	// Uploaded before URLs were write-once: copied, its copy's size read.
	legacy := "77777777-7777-4777-8777-777777777777"
	objects.size[genpipe.LegacyUploadKey("", legacy)] = 700
	req, err := pin("88888888-8888-4888-8888-888888888888", legacy)
	if err != nil || req.Image != "" || objects.size[genpipe.InputKey(req.ID)] != 700 {
		t.Fatalf("pinInput of a legacy upload: image %q, input %d bytes, %v; want the copy", req.Image, objects.size[genpipe.InputKey(req.ID)], err)
	}
	wantCalls("a legacy upload", 2, 5, 0)
	s.cfg.maxUpload = 500
	if _, err := pin("99999999-9999-4999-8999-999999999999", legacy); genpipe.ErrorCode(err) != genpipe.ETOOLARGE {
		t.Errorf("pinInput of a large legacy upload: %v; want %s", err, genpipe.ETOOLARGE)
	}
	wantCalls("a legacy upload over the limit", 3, 7, 1)
}

// What a server knows of uploads is bounded: past maxKnownUploads the
// oldest goes.
func TestKnownUploadsBounded(t *testing.T) {
	u := newKnownUploads()
	key := func(i int) string { return "images/" + time.Duration(i).String() }
	for i := range maxKnownUploads + 10 {
		u.present(key(i), int64(i))
	}
	u.present(key(maxKnownUploads+9), 5) // known already: no new entry
	if len(u.size) != maxKnownUploads || len(u.order) != maxKnownUploads {
		t.Errorf("%d uploads kept in %d places; want %d", len(u.size), len(u.order), maxKnownUploads)
	}
	if _, ok := u.lookup(key(0)); ok {
		t.Error("the first upload is still remembered")
	}
	if size, ok := u.lookup(key(maxKnownUploads + 9)); !ok || size != 5 {
		t.Errorf("the latest upload: %d bytes, %v; want seen, 5 bytes", size, ok)
	}
}
