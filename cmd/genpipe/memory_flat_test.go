//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Issue 13's memory targets for `genpipe up`.
const (
	flatPeakRSS = 300 << 20 // RSS during a 3,000-request burst run stays under it
	flatGrowth  = 0.10      // RSS after 30,000 requests is within 10% of RSS after 3,000
)

// TestMemoryFlat runs `genpipe up` with short AI latencies, pushes
// requests through its HTTP API in bursts, and samples its VmRSS: the
// peak during the first GENPIPE_MEMORY_REQUESTS (3,000), and the RSS after
// a short idle once they and then GENPIPE_MEMORY_MORE_REQUESTS (27,000)
// more are done. Extra flags for up come from GENPIPE_MEMORY_UP_ARGS
// (space-separated), to compare settings. With GENPIPE_MEMORY_PROFILE_DIR
// set, up also serves -pprof-addr and the test writes, at each idle point,
// its heap profile (heap-N.pb.gz, for go tool pprof -base), the same as
// text with the runtime's MemStats (heap-N.txt) and /proc/PID/smaps_rollup
// (smaps-N.txt), N being the requests done. It takes many minutes; -short
// skips it, and so does its absence from GENPIPE_MEMORY_TESTS=1.
//
//	GENPIPE_MEMORY_TESTS=1 go test -count=1 -run TestMemoryFlat -v -timeout 2h ./cmd/genpipe/
func TestMemoryFlat(t *testing.T) {
	if os.Getenv("GENPIPE_MEMORY_TESTS") == "" {
		t.Skip("set GENPIPE_MEMORY_TESTS=1: runs up through tens of thousands of requests")
	}
	first, more := envInt(t, "GENPIPE_MEMORY_REQUESTS", 3000), envInt(t, "GENPIPE_MEMORY_MORE_REQUESTS", 27000)
	s := newStandalone(t)
	args := s.upArgs("--check-latency", "20ms", "--generate-latency", "50ms", "--partitions", "4")
	if extra := os.Getenv("GENPIPE_MEMORY_UP_ARGS"); extra != "" {
		args = append(args, strings.Fields(extra)...)
	}
	profiles := memoryProfiles{dir: os.Getenv("GENPIPE_MEMORY_PROFILE_DIR")}
	if profiles.dir != "" {
		profiles.pprofAddr = testutil.FreeAddrs(t, 1)[0]
		args = append(args, "--pprof-addr", profiles.pprofAddr)
	}
	up := s.start("up", nil, args...)
	s.waitReady(up)
	pid := up.cmd.Process.Pid
	gen := printedURL(t, up, "Generative AI")
	rss := newRSSSampler(t, pid)
	defer rss.stop()
	t.Logf("up (pid %d, %s) ready: VmRSS %d MiB", pid, strings.Join(args[1:], " "), rss.now()>>20)

	objectID := s.uploadAs("", pngImage(t, 320, 200))
	sent := 0
	push := func(n int) {
		start := time.Now()
		for sent0 := sent; sent < sent0+n; {
			burst := min(300, sent0+n-sent)
			s.submitBurst(objectID, sent, burst)
			sent += burst
			s.waitGenerated(gen, sent, 10*time.Minute)
		}
		t.Logf("%d requests done (%s for %d)", sent, time.Since(start).Round(time.Second), n)
	}
	settled := func() int64 {
		time.Sleep(20 * time.Second) // idle: what up keeps when nothing happens
		now := rss.now()
		profiles.write(t, pid, sent)
		return now
	}

	push(first)
	peak := rss.max()
	after1 := settled()
	t.Logf("after %d requests: peak VmRSS %d MiB during the run (target under %d), %d MiB after 20s idle",
		sent, peak>>20, flatPeakRSS>>20, after1>>20)
	rss.reset()
	push(more)
	after2 := settled()
	growth := float64(after2-after1) / float64(after1)
	t.Logf("after %d requests: peak VmRSS %d MiB, %d MiB after 20s idle: %+.1f%% on after %d (target within %.0f%%)",
		sent, rss.max()>>20, after2>>20, 100*growth, first, 100*flatGrowth)
	t.Logf("generate AI memory: %s", aiMemory(t, gen))
	if peak > flatPeakRSS {
		t.Errorf("peak RSS during the first %d requests %d MiB; want under %d MiB", first, peak>>20, flatPeakRSS>>20)
	}
	if growth > flatGrowth || growth < -flatGrowth {
		t.Errorf("RSS after %d requests %d MiB, after %d %d MiB: %+.1f%%; want within %.0f%%", sent, after2>>20, first, after1>>20, 100*growth, 100*flatGrowth)
	}
}

// memoryProfiles writes what up holds at an idle point into dir, when
// set: see TestMemoryFlat.
type memoryProfiles struct {
	dir       string
	pprofAddr string // up's -pprof-addr
}

func (p memoryProfiles) write(t *testing.T, pid, sent int) {
	if p.dir == "" {
		return
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"heap-%d.pb.gz": "http://" + p.pprofAddr + "/debug/pprof/heap",
		"heap-%d.txt":   "http://" + p.pprofAddr + "/debug/pprof/heap?debug=1",
	}
	for name, url := range files {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("heap profile: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("heap profile %s: %s %v", url, resp.Status, err)
		}
		p.save(t, fmt.Sprintf(name, sent), body)
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	p.save(t, fmt.Sprintf("smaps-%d.txt", sent), smaps)
	t.Logf("profiles after %d requests written to %s", sent, p.dir)
}

func (p memoryProfiles) save(t *testing.T, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(p.dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// submitBurst posts n requests for objectID at once, 32 at a time,
// retrying those refused with 429 or 503.
func (s *standalone) submitBurst(objectID string, from, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				body, _ := json.Marshal(map[string]string{"objectId": objectID, "style": "forest",
					"title": "Memory " + strconv.Itoa(from+i), "description": "Flat memory through many requests."})
				for attempt := 0; ; attempt++ {
					resp, err := http.Post("http://"+s.apiAddr+"/v1/requests", "application/json", bytes.NewReader(body))
					if err != nil {
						s.t.Errorf("POST /v1/requests: %v", err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						break
					}
					if (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) || attempt > 100 {
						s.t.Errorf("POST /v1/requests: %s", resp.Status)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// waitGenerated waits until the Generative AI at addr has served n calls.
func (s *standalone) waitGenerated(addr string, n int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var st aisim.Stats
		if err := getJSON("http://"+addr+"/stats", &st); err != nil {
			s.t.Fatalf("generate stats: %v", err)
		}
		if st.UniqueSucceeded >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("after %s the Generative AI served %d of %d requests", timeout, st.UniqueSucceeded, n)
		}
		s.checkAlive()
		time.Sleep(200 * time.Millisecond)
	}
}

// rssSampler samples a process's VmRSS every 200ms and keeps the most.
type rssSampler struct {
	t    *testing.T
	pid  int
	mu   sync.Mutex
	peak int64
	done chan struct{}
	wg   sync.WaitGroup
}

func newRSSSampler(t *testing.T, pid int) *rssSampler {
	r := &rssSampler{t: t, pid: pid, done: make(chan struct{})}
	r.wg.Go(func() {
		for {
			select {
			case <-r.done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if v, ok := r.read(); ok {
				r.mu.Lock()
				r.peak = max(r.peak, v)
				r.mu.Unlock()
			}
		}
	})
	return r
}

func (r *rssSampler) read() (int64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func (r *rssSampler) now() int64 {
	v, ok := r.read()
	if !ok {
		r.t.Fatalf("no VmRSS for pid %d", r.pid)
	}
	return v
}

func (r *rssSampler) max() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak
}

func (r *rssSampler) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peak = 0
}

func (r *rssSampler) stop() { close(r.done); r.wg.Wait() }
