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

// A submission pins its upload with one call to the object store when
// this server issued the upload's URL: the size it was signed for is the
// upload's, so nothing is read back. An upload this server did not sign
// (another process's, an older one) has its copy's size read, and one over
// the limit is refused either way, its copy deleted.
func TestPinInputSignedUploads(t *testing.T) {
	objects := &fakeObjects{size: map[string]int64{}}
	s := &Server{objects: objects, uploads: newSignedUploads(),
		cfg: config{maxUpload: 1000, maxBody: 1 << 10, uploadTTL: time.Minute, now: time.Now, logger: slog.New(slog.DiscardHandler)}}

	// Issued here: createUpload remembers the signed size.
	rec := httptest.NewRecorder()
	s.createUpload(rec, httptest.NewRequest(http.MethodPost, "/v1/uploads",
		strings.NewReader(`{"contentType":"image/png","contentLength":600}`)))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /v1/uploads: %d %s", rec.Code, rec.Body)
	}
	objectID := rec.Body.String()[len(`{"objectId":"`):][:36]
	objects.size[genpipe.UploadKey("", objectID)] = 600 // the client's PUT
	req := &genpipe.Request{ID: "11111111-1111-4111-8111-111111111111", Job: genpipe.Job{ObjectID: objectID}}
	if err := s.pinInput(t.Context(), req); err != nil {
		t.Fatalf("pinInput of a signed upload: %v", err)
	}
	if copies, stats, _ := objects.calls(); copies != 1 || stats != 0 {
		t.Errorf("pinning a signed upload made %d copies and %d stats; want 1 copy and no stat", copies, stats)
	}

	// Not issued here: its copy's size is read.
	other := "22222222-2222-4222-8222-222222222222"
	objects.size[genpipe.UploadKey("", other)] = 2000
	req = &genpipe.Request{ID: "33333333-3333-4333-8333-333333333333", Job: genpipe.Job{ObjectID: other}}
	err := s.pinInput(t.Context(), req)
	if genpipe.ErrorCode(err) != genpipe.ETOOLARGE {
		t.Errorf("pinInput of a large upload signed elsewhere: %v; want %s", err, genpipe.ETOOLARGE)
	}
	if copies, stats, deletes := objects.calls(); copies != 2 || stats != 1 || deletes != 1 {
		t.Errorf("after an upload signed elsewhere: %d copies, %d stats, %d deletes; want 2, 1, 1", copies, stats, deletes)
	}

	// Signed here under a higher limit: refused without a read.
	s.cfg.maxUpload = 500
	req = &genpipe.Request{ID: "44444444-4444-4444-8444-444444444444", Job: genpipe.Job{ObjectID: objectID}}
	if err := s.pinInput(t.Context(), req); genpipe.ErrorCode(err) != genpipe.ETOOLARGE {
		t.Errorf("pinInput of an upload signed over today's limit: %v; want %s", err, genpipe.ETOOLARGE)
	}
	if _, stats, _ := objects.calls(); stats != 1 {
		t.Errorf("%d stats; want no new one for an upload signed here", stats)
	}

	// Never uploaded, signed or not: 422.
	req = &genpipe.Request{ID: "55555555-5555-4555-8555-555555555555", Job: genpipe.Job{ObjectID: "66666666-6666-4666-8666-666666666666"}}
	if err := s.pinInput(t.Context(), req); genpipe.ErrorCode(err) != genpipe.EUNPROCESSABLE {
		t.Errorf("pinInput of an object never uploaded: %v; want %s", err, genpipe.EUNPROCESSABLE)
	}
}

// The signed sizes are bounded: past maxSignedUploads the oldest goes.
func TestSignedUploadsBounded(t *testing.T) {
	u := newSignedUploads()
	for i := range maxSignedUploads + 10 {
		u.add(strings.Repeat("k", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), int64(i))
	}
	if len(u.size) != maxSignedUploads {
		t.Errorf("%d sizes kept; want %d", len(u.size), maxSignedUploads)
	}
	if _, ok := u.signed("a0s"); ok {
		t.Error("the first upload is still remembered")
	}
	last := maxSignedUploads + 9
	if n, ok := u.signed(strings.Repeat("k", last%7) + string(rune('a'+last%26)) + time.Duration(last).String()); !ok || n != int64(last) {
		t.Errorf("the latest upload: %d, %v; want %d", n, ok, last)
	}
}
