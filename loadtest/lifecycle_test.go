package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe/internal/span"
)

// fakeSystem serves the HTTP contract the lifecycle lab drives — POST
// /v1/uploads and the upload URL, POST /v1/requests (startBy, 202 with
// estimatedStartAt, 429 start_too_late), GET and DELETE
// /v1/requests/{id} (200 with the view, 409 once finished) — and the two
// AIs' GET /calls, on a plan it makes at each submission: the check starts
// at once, the generation on the earliest of capacity slots, each call
// for its latency. Its estimates are its plan, off by estimateOff (a
// fraction of the wait since submission). A cancel drops the calls not
// started and ends a running one abortAfter later; with ignoreCancel it
// lets them all run.
type fakeSystem struct {
	t            *testing.T
	checkLatency time.Duration
	genLatency   time.Duration
	slots        []time.Time // when each generative slot frees
	estimateOff  float64
	ignoreCancel bool
	abortAfter   time.Duration

	mu   sync.Mutex
	reqs map[string]*fakeRequest
	n    int
	srv  *httptest.Server
}

type fakeRequest struct {
	submitted       time.Time
	check, generate Call // planned
	status          string
	canceledAt      time.Time
}

func newFakeSystem(t *testing.T, capacity int, check, gen time.Duration) *fakeSystem {
	f := &fakeSystem{t: t, checkLatency: check, genLatency: gen, slots: make([]time.Time, capacity), reqs: map[string]*fakeRequest{},
		abortAfter: 5 * time.Millisecond}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/uploads", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusCreated, map[string]any{"objectId": "obj", "uploadUrl": f.srv.URL + "/upload", "method": "PUT",
			"headers": map[string]string{"Content-Type": "image/png"}})
	})
	mux.HandleFunc("PUT /upload", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /v1/requests", f.submit)
	mux.HandleFunc("GET /v1/requests/{id}", func(w http.ResponseWriter, r *http.Request) { f.view(w, r.PathValue("id"), false) })
	mux.HandleFunc("DELETE /v1/requests/{id}", func(w http.ResponseWriter, r *http.Request) { f.view(w, r.PathValue("id"), true) })
	mux.HandleFunc("GET /check/calls", func(w http.ResponseWriter, r *http.Request) { f.calls(w, r, "check") })
	mux.HandleFunc("GET /generate/calls", func(w http.ResponseWriter, r *http.Request) { f.calls(w, r, "generate") })
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeSystem) system(capacity int) System {
	return System{API: f.srv.URL, CheckAI: f.srv.URL + "/check", GenerateAI: f.srv.URL + "/generate",
		CheckCapacity: 1000, CheckLatency: f.checkLatency, GenerateCapacity: capacity, GenerateLatency: f.genLatency}
}

func (f *fakeSystem) submit(w http.ResponseWriter, r *http.Request) {
	var in struct {
		StartBy time.Time `json:"startBy"`
	}
	json.NewDecoder(r.Body).Decode(&in)
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("r%d", f.n)
	checkEnd := now.Add(f.checkLatency)
	slot := 0
	for i := range f.slots {
		if f.slots[i].Before(f.slots[slot]) {
			slot = i
		}
	}
	genStart := span.Later(f.slots[slot], checkEnd)
	if !in.StartBy.IsZero() && genStart.After(in.StartBy) {
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"code": "start_too_late", "status": 429})
		return
	}
	f.slots[slot] = genStart.Add(f.genLatency)
	req := &fakeRequest{submitted: now, status: "received",
		check:    Call{RequestID: id, Start: now, End: checkEnd, Outcome: "succeeded", Stage: "check"},
		generate: Call{RequestID: id, Start: genStart, End: genStart.Add(f.genLatency), Outcome: "succeeded", Stage: "generate"}}
	f.reqs[id] = req
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": "received", "estimatedStartAt": now})
}

// estimate is the predicted start of req's next call at now, off by
// estimateOff of its wait since submission: at least that fraction of the
// wait the lab measures from when it read the estimate, however late the
// read reached the server (a busy machine delays it, and an error that
// shrinks with the wait left would then look exact).
func (f *fakeSystem) estimate(req *fakeRequest, now time.Time) time.Time {
	if req.status == "canceled" || !now.Before(req.generate.Start) || now.Before(req.check.End) && !now.Before(req.check.Start) {
		return time.Time{}
	}
	next := req.generate.Start
	if now.Before(req.check.Start) {
		next = req.check.Start
	}
	return next.Add(time.Duration(f.estimateOff * float64(next.Sub(req.submitted))))
}

func (f *fakeSystem) view(w http.ResponseWriter, id string, cancel bool) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	req, ok := f.reqs[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": "not_found"})
		return
	}
	if req.status != "canceled" {
		switch {
		case !now.Before(req.generate.End):
			req.status = "done"
		case !now.Before(req.generate.Start):
			req.status = "generating"
		case !now.Before(req.check.Start):
			req.status = "checking"
		}
	}
	if cancel {
		switch {
		case req.status == "done":
			writeJSON(w, http.StatusConflict, map[string]any{"code": "conflict"})
			return
		case req.status != "canceled" && !f.ignoreCancel:
			req.status, req.canceledAt = "canceled", now
			for _, c := range []*Call{&req.check, &req.generate} {
				switch {
				case c.Start.After(now):
					*c = Call{} // never starts
				case c.End.After(now):
					c.End, c.Outcome = now.Add(f.abortAfter), "abandoned"
				}
			}
		}
	}
	out := map[string]any{"id": id, "status": req.status}
	if e := f.estimate(req, now); !e.IsZero() {
		out["estimatedStartAt"] = e
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *fakeSystem) calls(w http.ResponseWriter, r *http.Request, stage string) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []Call{}
	for _, req := range f.reqs {
		c := req.check
		if stage == "generate" {
			c = req.generate
		}
		if c.RequestID == "" || c.Start.After(now) {
			continue
		}
		if c.End.After(now) {
			c.End, c.Outcome = time.Time{}, "running"
		} else if r.URL.Query().Get("running") != "" {
			continue
		}
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, out)
}

func runFake(t *testing.T, f *fakeSystem, d time.Duration) *LifecycleReport {
	t.Helper()
	rep, err := RunLifecycle(t.Context(), LifecycleConfig{System: f.system(len(f.slots)), TimeScale: 1, Image: []byte("png"),
		Duration: d, Steps: []float64{0.5, 2}, StepDuration: 400 * time.Millisecond,
		MinWait: 20 * time.Millisecond, DrainTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("RunLifecycle: %v", err)
	}
	return rep
}

// Against a system that keeps the contract and predicts exactly, every
// target passes, and the report says what happened to each role.
func TestLifecycleLabPasses(t *testing.T) {
	f := newFakeSystem(t, 2, 10*time.Millisecond, 40*time.Millisecond)
	rep := runFake(t, f, 600*time.Millisecond)
	lc, st := rep.Lifecycle, rep.Step
	if lc == nil || st == nil {
		t.Fatalf("report %+v; want both scenarios", rep)
	}
	for _, target := range rep.Targets() {
		if !target.Pass {
			t.Errorf("FAIL %s: %s, want %s", target.Name, target.Got, target.Want)
		}
	}
	total := 0
	statuses := map[string]int{}
	for _, r := range lc.Roles {
		total += r.Requests
		for s, n := range r.Statuses {
			statuses[r.Role+"/"+s] += n
		}
	}
	if total != lc.Requests || lc.Requests != 60 {
		t.Errorf("roles hold %d of %d requests; want all 60 (0.6 s at twice 50/s)", total, lc.Requests)
	}
	if statuses["canceled while waiting/canceled"] == 0 || statuses["startBy they cannot meet/refused: start_too_late"] == 0 {
		t.Errorf("statuses by role %v; want canceled and refused ones", statuses)
	}
	if st.Samples == 0 || st.MedianRelError > 0.01 || len(st.ByStep) != 2 {
		t.Errorf("step: %d samples, median relative error %.3f, by step %+v; want exact estimates in two steps", st.Samples, st.MedianRelError, st.ByStep)
	}
	var out bytes.Buffer
	if err := WriteLifecycleTable(&out, *rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lifecycle at 2× the capacity", "canceled while waiting", "PASS AI calls started after a cancel or a startBy",
		"PASS aborting a running call", "PASS predicted start"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	dir := t.TempDir()
	charts, err := WriteLifecycleCharts(dir, *rep)
	if err != nil || len(charts) != 2 {
		t.Fatalf("charts %v, %v", charts, err)
	}
	var page bytes.Buffer
	if err := WriteLifecycleHTML(&page, *rep, charts); err != nil || !strings.Contains(page.String(), `<img src="estimate.png"`) {
		t.Errorf("HTML %v:\n%s", err, page.String())
	}
}

// A system that starts calls after a cancel, runs canceled calls out (for
// longer than the abort's bound) and predicts half the wait wrong fails
// each target.
func TestLifecycleLabFails(t *testing.T) {
	f := newFakeSystem(t, 4, 10*time.Millisecond, 400*time.Millisecond)
	f.ignoreCancel, f.estimateOff = true, 0.5
	rep := runFake(t, f, 2*time.Second)
	for _, target := range rep.Targets() {
		if target.Pass {
			t.Errorf("PASS %s: %s; want FAIL", target.Name, target.Got)
		}
	}
	if rep.Lifecycle.CallsAfterCancel == 0 || rep.Lifecycle.NotAborted == 0 {
		t.Errorf("lifecycle %+v; want calls after cancels and calls that ran out", rep.Lifecycle)
	}
}
