package slide

import (
	"image"
	"image/color"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/draw"

	"github.com/genpipe/genpipe"
)

// noiseImage is a picture no encoder can compress and no filter can smooth
// away: what an attacker sends to make a slide as costly as it can be.
func noiseImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.Uint32())
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	return img
}

// allocated returns the bytes f allocated, garbage included: an upper
// bound of what it held at once. Tests that call it must not run in
// parallel with others.
func allocated(t *testing.T, f func()) int64 {
	t.Helper()
	if raceEnabled {
		t.Skip("the race detector changes allocations")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// The streaming scaler draws what draw.CatmullRom draws, shrinking and
// enlarging, for opaque and translucent pictures of several image types.
func TestScaleMatchesCatmullRom(t *testing.T) {
	translucent := image.NewNRGBA(image.Rect(10, 20, 310, 220))
	for y := range 200 {
		for x := range 300 {
			translucent.SetNRGBA(10+x, 20+y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), uint8(x + y)})
		}
	}
	ycbcr := image.NewYCbCr(image.Rect(0, 0, 400, 300), image.YCbCrSubsampleRatio420)
	for i := range ycbcr.Y {
		ycbcr.Y[i] = uint8(i * 7)
	}
	for i := range ycbcr.Cb {
		ycbcr.Cb[i], ycbcr.Cr[i] = uint8(i*3), uint8(255-i)
	}
	for _, tc := range []struct {
		name string
		src  image.Image
		w, h int
	}{
		{"shrink", testImage(1200, 900), 400, 300},
		{"shrink odd", testImage(1001, 77), 130, 10},
		{"enlarge", testImage(64, 48), 784, 588},
		{"same size", testImage(200, 100), 200, 100},
		{"translucent", translucent, 123, 82},
		{"ycbcr", ycbcr, 210, 160},
		{"one pixel", testImage(1, 1), 50, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := scaleImage(tc.src, rect{w: float64(tc.w), h: float64(tc.h)})
			want := image.NewRGBA(image.Rect(0, 0, tc.w, tc.h))
			draw.CatmullRom.Scale(want, want.Rect, tc.src, tc.src.Bounds(), draw.Src, nil)
			worst := 0
			for i := range got.Pix {
				worst = max(worst, abs(int(got.Pix[i])-int(want.Pix[i])))
			}
			if worst > 2 {
				t.Errorf("a channel differs from draw.CatmullRom's by %d; want at most 2 (rounding)", worst)
			}
		})
	}
}

// Scaling a tall upload allocates in proportion to its width, within
// scaleBytes, not to its height: draw's kernel scaler allocated 32 bytes
// per destination column per source row (100 MB for this one).
func TestScaleMemoryIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name       string
		src        image.Image
		dstW, dstH int
	}{
		{"tall", image.NewGray(image.Rect(0, 0, 1000, 8000)), 103, 824},
		{"wide", image.NewGray(image.Rect(0, 0, 8000, 1000)), 784, 98},
		{"square", image.NewYCbCr(image.Rect(0, 0, 6000, 6000), image.YCbCrSubsampleRatio420), 784, 784},
		{"enlarge", image.NewRGBA(image.Rect(0, 0, 64, 64)), 784, 784},
	} {
		t.Run(tc.name, func(t *testing.T) {
			result := int64(4 * tc.dstW * tc.dstH)
			n := allocated(t, func() { scaleImage(tc.src, rect{w: float64(tc.dstW), h: float64(tc.dstH)}) })
			limit := scaleBytes(tc.src.Bounds().Size(), image.Pt(tc.dstW, tc.dstH))
			t.Logf("allocated %d KiB besides the %d KiB result; bound %d KiB", (n-result)>>10, result>>10, limit>>10)
			if n-result > limit {
				t.Errorf("allocated %d bytes besides the result; want at most scaleBytes = %d", n-result, limit)
			}
			if limit > 2<<20 {
				t.Errorf("scaleBytes = %d; want under 2 MiB for a source at most 8000 pixels wide", limit)
			}
		})
	}
}

// RenderBytes bounds what Render allocates for the costliest slides: a
// picture no encoder can compress, translucent (the PDF then stores its
// alpha apart), the longest texts in every style, very wide and very tall
// uploads.
func TestRenderBytesBounds(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocations")
	}
	long := strings.Repeat("Generative pipelines reward patience and bounded queues. ", 40)
	cjk := strings.Repeat("生成式人工智能管道。", 200) // the most slides: 2000 runes of CJK
	// The fallback fonts load once per process, not per render.
	mustRender(t, testImage(64, 64), genpipe.Styles[0], "", cjk+"مرحبا שלום नमस्ते สวัสดี 🚀")
	translucent := noiseImage(1064, 1064)
	for i := 3; i < len(translucent.Pix); i += 8 {
		translucent.Pix[i] = uint8(i)
	}
	for _, tc := range []struct {
		name   string
		img    image.Image
		styles []genpipe.Style
	}{
		{"noise", noiseImage(1064, 1064), genpipe.Styles[:1]},
		{"translucent noise", translucent, genpipe.Styles}, // the fonts differ
		{"tiny", testImage(64, 64), genpipe.Styles[:1]},
		{"tall", image.NewGray(image.Rect(0, 0, 64, 8000)), genpipe.Styles[:1]},
		{"wide", image.NewGray(image.Rect(0, 0, 8000, 64)), genpipe.Styles[:1]},
		{"large", image.NewYCbCr(image.Rect(0, 0, 8000, 8000), image.YCbCrSubsampleRatio420), genpipe.Styles[:1]},
	} {
		limit := RenderBytes(tc.img.Bounds().Size())
		for _, s := range tc.styles {
			runtime.GC()
			text := long
			switch s.ID {
			case "minimal":
				text = cjk
			case "neon":
				text = mostSlides(t, s, long[:200])
			}
			n := allocated(t, func() { mustRender(t, tc.img, s, long[:200], text) })
			t.Logf("%s, style %s: allocated %.1f MiB; RenderBytes %.1f MiB", tc.name, s.ID, float64(n)/(1<<20), float64(limit)/(1<<20))
			if n > limit {
				t.Errorf("%s, style %s: Render allocated %d bytes; want at most RenderBytes = %d", tc.name, s.ID, n, limit)
			}
		}
	}
}

// MaxRenderBytes bounds RenderBytes for every image shape up to 8000
// pixels a side: the picture is largest when the image has the image
// column's proportions, and the scaling costs most for the widest images.
func TestMaxRenderBytes(t *testing.T) {
	worst, at := int64(0), image.Point{}
	for w := 1; w <= 8000; w += 13 {
		for _, h := range []int{1, 64, w * (contentH - 2*frameW) / (imageColW - 2*frameW), w, 4000, 7999, 8000} {
			for _, size := range []image.Point{{w, h}, {h, w}, {8000, h}, {h, 8000}} {
				if size.X < 1 || size.Y < 1 || size.X > 8000 || size.Y > 8000 {
					continue
				}
				if n := RenderBytes(size); n > worst {
					worst, at = n, size
				}
			}
		}
	}
	t.Logf("RenderBytes is at most %.1f MiB, for %v", float64(worst)/(1<<20), at)
	if worst > MaxRenderBytes {
		t.Errorf("RenderBytes(%v) = %d; want at most MaxRenderBytes = %d", at, worst, MaxRenderBytes)
	}
}

// The PNG of a render after the first is drawn on a reused canvas: it
// allocates less than the 8 MiB canvas it draws on.
func TestRenderReusesCanvas(t *testing.T) {
	th, err := newTheme(genpipe.Styles[0])
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(64, 48)
	lay := newLayout(th, newTypesetter(), img.Bounds().Size(), "t", "d")
	pic := scaleImage(img, lay.image)
	if _, err := renderPNG(th, lay, 0, pic); err != nil { // leaves a canvas to reuse
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := renderPNG(th, lay, 0, pic); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	canvas := uint64(4 * slideW * slideH)
	if got := after.TotalAlloc - before.TotalAlloc; got >= canvas {
		t.Errorf("a second PNG allocated %d KiB; want less than its %d KiB canvas, reused", got>>10, canvas>>10)
	}
}

// mostSlides is a description that makes a deck of MaxSlides slides in
// style s under title: short paragraphs, a line each.
func mostSlides(t *testing.T, s genpipe.Style, title string) string {
	th, err := newTheme(s)
	if err != nil {
		t.Fatal(err)
	}
	text := "Bounded queues."
	for {
		more := text + "\nBounded queues."
		if len(newLayout(th, newTypesetter(), image.Pt(800, 600), title, more).pages) > MaxSlides {
			return text
		}
		text = more
	}
}
