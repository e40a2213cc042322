package aisim_test

import (
	"bytes"
	"context"
	"image"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/slide"
)

// bigAPP is a JPEG whose metadata before the pixels is over MaxHeaderBytes:
// APP1 segments, 64 KiB each, after the start marker.
func bigAPP(t *testing.T) []byte {
	data := jpegOf(t, picture(64, 64))
	seg := append([]byte{0xff, 0xe1, 0xff, 0xff}, make([]byte, 0xffff-2)...)
	var out bytes.Buffer
	out.Write(data[:2])
	for out.Len() < aisim.MaxHeaderBytes+len(seg) {
		out.Write(seg)
	}
	out.Write(data[2:])
	return out.Bytes()
}

// Each reason an image is refused from its header, before anything is
// decoded: the Checking AI answers a failing verdict with it, and counts the
// refusals of costly images.
func TestCheckRefusesFromHeader(t *testing.T) {
	st := newStore(t)
	checker, svc := newChecker(t, aisim.WithMaxDecodedBytes(16<<20))
	for _, tc := range []struct {
		name, reason string
		data         []byte
	}{
		{"16-bit PNG", "image is 8000×8000 (16-bit PNG) and would take 489 MiB to decode; the maximum is 16 MiB",
			aisim.PNGHead(8000, 8000, 16, 6)},
		{"8-bit PNG", "image is 2100×2000 (8-bit PNG) and would take 17 MiB to decode; the maximum is 16 MiB",
			aisim.PNGHead(2100, 2000, 8, 2)},
		{"JPEG", "image is 2000×2000 (JPEG) and would take 22 MiB to decode; the maximum is 16 MiB",
			aisim.JPEGHead(t, 2000, 2000)},
		{"metadata", "the image's header (what comes before its pixels) is over 1024 KiB", bigAPP(t)},
		{"too wide", "image is 8001×100; the maximum is 8000×8000", aisim.PNGHead(8001, 100, 8, 0)},
		{"too small", "image is 63×64; the minimum is 64×64", aisim.PNGHead(63, 64, 8, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "r-" + tc.name, ImageURL: st.add(tc.name, tc.data)})
			if err != nil {
				t.Fatal(err)
			}
			if v.Pass || v.Reason != tc.reason {
				t.Errorf("verdict %+v, want a reject with reason %q", v, tc.reason)
			}
		})
	}
	if m := svc.Memory(); m.Refused != 3 || m.Peak != 0 {
		t.Errorf("memory %+v, want 3 refused as too costly and nothing ever held", m)
	}
}

// The attack image of issue 10, an 8000×8000 16-bit RGBA PNG that
// decodes to 489 MiB, is refused by both AIs at the default limit without
// a large allocation: the Generative AI answers 422 with the reason.
func TestAttackImageRefusedCheaply(t *testing.T) {
	st := newStore(t)
	// Its header is all the AIs read (TestHeaderChargeBoundsDecoding
	// shows that a real 16-bit image decodes to what its header says, and
	// cmd/genpipe's TestMemoryBound sends the whole 0.5 MB file).
	url := st.add("bomb", aisim.PNGHead(8000, 8000, 16, 6))
	checker, _ := newChecker(t)
	gen, _ := newGenerator(t)
	const reason = "image is 8000×8000 (16-bit PNG) and would take 489 MiB to decode; the maximum is 256 MiB"

	var verdict genpipe.CheckVerdict
	var checkErr, genErr error
	allocated := allocatedBy(func() {
		verdict, checkErr = checker.Check(context.Background(), genpipe.CheckInput{RequestID: "bomb", ImageURL: url})
		genErr = gen.Generate(context.Background(), generateInput(st, url, "bomb"))
	})
	if checkErr != nil || verdict.Pass || verdict.Reason != reason {
		t.Errorf("check: %+v, %v; want a reject with reason %q", verdict, checkErr, reason)
	}
	if genpipe.ErrorCode(genErr) != genpipe.EINVALID || !strings.HasSuffix(genpipe.ErrorMessage(genErr), "(HTTP 422): "+reason) {
		t.Errorf("generate: %v; want a 422 (EINVALID) with reason %q", genErr, reason)
	}
	t.Logf("both calls allocated %d KiB in all, the test's own HTTP included", allocated>>10)
	if allocated > 16<<20 {
		t.Errorf("refusing the image allocated %d MiB; want under 16 MiB", allocated>>20)
	}
}

func allocatedBy(f func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// Calls at once hold no more memory than the budget, by the service's own
// accounting: with room for fewer images and their work than there are
// calls, the calls of each service all succeed, some of them after
// waiting, and give everything back.
func TestConcurrentCallsStayWithinBudget(t *testing.T) {
	st := newStore(t)
	url := st.add("img", pngOf(t, picture(512, 512)))
	for _, tc := range []struct {
		model       string
		calls, room int   // calls at once, and how many the budget holds
		extra, most int64 // the work beside decoding: for this image, for any
	}{
		{"check", 16, 2, 0, 0},
		{"generate", 2, 1, slide.RenderBytes(image.Pt(512, 512)), slide.MaxRenderBytes}, // renders are slow under -race
	} {
		t.Run(tc.model, func(t *testing.T) {
			// A call's claim: the decoded image, the decoder, the header
			// (at most one 4 KiB read), the work beside.
			need := int64(512*512*4+256<<10+4<<10) + tc.extra
			const maxDecoded = 2 << 20
			budget := max(int64(tc.room)*need+need/2, maxDecoded+aisim.MaxHeaderBytes+tc.most)
			svc := service(t, tc.model, aisim.WithCapacity(16), aisim.WithMemoryBudget(budget), aisim.WithMaxDecodedBytes(maxDecoded))
			base := serve(t, svc)
			var wg sync.WaitGroup
			for i := range tc.calls {
				wg.Go(func() {
					id := strconv.Itoa(i)
					if tc.model == "generate" {
						if err := aiclient.NewGenerator(base).Generate(context.Background(), generateInput(st, url, "c"+id)); err != nil {
							t.Errorf("call %d: %v", i, err)
						}
						return
					}
					v, err := aiclient.NewChecker(base).Check(context.Background(), genpipe.CheckInput{RequestID: id, ImageURL: url})
					if err != nil || !v.Pass {
						t.Errorf("call %d: %+v, %v", i, v, err)
					}
				})
			}
			wg.Wait()
			m, s := svc.Memory(), svc.Stats()
			t.Logf("budget %d KiB, a claim about %d KiB: peak %d KiB, %d of %d calls waited", m.Budget>>10, need>>10, m.Peak>>10, m.Waits, tc.calls)
			if m.Peak > m.Budget || m.Peak == 0 {
				t.Errorf("peak %d; want some, and at most the budget (%d)", m.Peak, m.Budget)
			}
			if m.Held != 0 || m.Waiting != 0 || s.Succeeded != int64(tc.calls) || s.OverCapacity != 0 {
				t.Errorf("memory %+v, stats %+v; want all %d calls served and everything given back", m, s, tc.calls)
			}
		})
	}
}

// A call that waits for memory keeps its slot, so a call over capacity is
// still refused at once with 429; and it does not keep its download open
// while it waits, but fetches the image again once memory is free, and
// decodes it if it is still the same image, however the network cuts it.
func TestWaitingForMemoryKeepsTheSlot(t *testing.T) {
	data := pngOf(t, picture(800, 800)) // 2.7 MiB to decode
	other := pngOf(t, picture(800, 700))
	var mu sync.Mutex
	gets := map[string]int{}
	release := make(chan struct{})
	objects := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets[r.URL.Path]++
		first := gets[r.URL.Path] == 1
		mu.Unlock()
		switch {
		case r.URL.Path == "/slow": // the header, then the rest once released
			w.Write(data[:100])
			w.(http.Flusher).Flush()
			<-release
			w.Write(data[100:])
		case first: // a short first read, then nothing until the call gives up the download
			w.Write(data[:50])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case r.URL.Path == "/changed":
			w.Write(other)
		default:
			w.Write(data)
		}
	}))
	t.Cleanup(objects.Close)
	// Room for one image at a time.
	svc := service(t, "check", aisim.WithCapacity(3), aisim.WithMaxDecodedBytes(3<<20), aisim.WithMemoryBudget(4<<20))
	checker := aiclient.NewChecker(serve(t, svc))
	check := func(id string) <-chan genpipe.CheckVerdict {
		verdicts := make(chan genpipe.CheckVerdict, 1)
		go func() {
			v, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: id, ImageURL: objects.URL + "/" + id})
			if err != nil {
				t.Errorf("%s call: %v", id, err)
			}
			verdicts <- v
		}()
		return verdicts
	}

	slow := check("slow") // claims the memory, then stalls in the download
	waitFor(t, func() bool { return svc.Memory().Held > 0 })
	waiting, changed := check("waiting"), check("changed")
	waitFor(t, func() bool { return svc.Memory().Waiting == 2 })
	_, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "over", ImageURL: objects.URL + "/over"})
	if genpipe.ErrorCode(err) != genpipe.ETOOMANY {
		t.Errorf("a fourth call with three slots, two waiting for memory: %v, want 429", err)
	}
	close(release)
	for name, v := range map[string]genpipe.CheckVerdict{"slow": <-slow, "waiting": <-waiting} {
		if !v.Pass {
			t.Errorf("%s call: %+v, want a pass", name, v)
		}
	}
	if v, want := <-changed, "the image changed while it waited to be decoded"; v.Pass || v.Reason != want {
		t.Errorf("changed call: %+v, want a reject with reason %q", v, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if gets["/waiting"] != 2 || gets["/changed"] != 2 || gets["/over"] != 0 {
		t.Errorf("GETs %v; want the waiting calls' images fetched twice (before and after waiting), none for the refused call", gets)
	}
	if m := svc.Memory(); m.Waits != 2 || m.Held != 0 || m.Peak > m.Budget {
		t.Errorf("memory %+v, want 2 waits, nothing held, peak within the budget", m)
	}
}
