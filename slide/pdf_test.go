package slide

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
)

// The PDF shows what the PNG shows: rasterized by poppler's pdftoppm at the
// PNG's resolution, the slide in every script differs from the PNG only at
// the glyphs' antialiased edges. A glyph missing from the PDF (a box, an
// empty space) would differ over its whole area.
func TestPDFMatchesPNG(t *testing.T) {
	requireFonts(t)
	pdftoppm, err := exec.LookPath("pdftoppm")
	if err != nil {
		t.Skip("pdftoppm (Debian's poppler-utils) is not installed")
	}
	var all []string
	for _, sc := range scripts {
		all = append(all, sc.name+": "+sc.text)
	}
	all = append(all, "שלום עולם: right to left", "مرحبا بكم في genpipe 2027")
	title, desc := "Überblick — 市場分析 2027 🚀", strings.Join(all, "\n")
	for _, s := range genpipe.Styles {
		f := mustRender(t, testImage(640, 480), s, title, desc)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "slide.pdf"), f.PDF, 0o644); err != nil {
			t.Fatal(err)
		}
		// 144 dpi makes the 960×540 pt page 1920×1080 pixels.
		out, err := exec.Command(pdftoppm, "-r", "144", "-png", "-singlefile", "-f", "1", "-l", "1",
			filepath.Join(dir, "slide.pdf"), filepath.Join(dir, "page")).CombinedOutput()
		if err != nil {
			t.Fatalf("pdftoppm: %v: %s", err, out)
		}
		fromPDF := decodePNGFile(t, filepath.Join(dir, "page.png"))
		fromPNG, err := png.Decode(bytes.NewReader(f.PNG))
		if err != nil {
			t.Fatal(err)
		}
		if fromPDF.Bounds() != fromPNG.Bounds() {
			t.Fatalf("style %s: the PDF rasterizes to %v; the PNG is %v", s.ID, fromPDF.Bounds(), fromPNG.Bounds())
		}
		// Each line's box, compared alone: a glyph missing from the PDF
		// makes a good part of its line differ.
		th, err := newTheme(s)
		if err != nil {
			t.Fatal(err)
		}
		lay := newLayout(th, newTypesetter(), image.Pt(640, 480), cleanTitle(title), cleanText(desc))
		for _, part := range []struct {
			b     textBlock
			lines []placed
		}{{lay.title, lay.pages[0].title}, {lay.body, lay.pages[0].body}} {
			for _, pl := range part.lines {
				r := image.Rect(int(pl.x), int(pl.y), int(pl.x+pl.line.width)+1, int(pl.y+part.b.lineHeight))
				if frac := differing(fromPDF, fromPNG, r); frac > 0.045 {
					t.Errorf("style %s: line %q: %.1f%% of its pixels differ between the PDF and the PNG", s.ID, pl.line.text, 100*frac)
				}
			}
		}
	}
}

// differing is the fraction of r's pixels that differ clearly in a and b.
func differing(a, b image.Image, r image.Rectangle) float64 {
	differ, total := 0, 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if max(absDiff(r1, r2), absDiff(g1, g2), absDiff(b1, b2))>>8 > 96 {
				differ++
			}
			total++
		}
	}
	return float64(differ) / float64(max(total, 1))
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func decodePNGFile(t *testing.T, path string) image.Image {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}
