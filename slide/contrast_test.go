package slide

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
)

// luminance is the WCAG 2.1 relative luminance of c.
func luminance(c color.RGBA) float64 {
	ch := func(v uint8) float64 {
		s := float64(v) / 255
		if s <= 0.03928 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(c.R) + 0.7152*ch(c.G) + 0.0722*ch(c.B)
}

// contrast is the WCAG 2.1 contrast ratio of a and b.
func contrast(a, b color.RGBA) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

// Every style's title and body are readable (WCAG AA, 4.5:1) against what
// lies behind them: the rendered background, sampled down each line's box
// beside the text, across the gradient and the band.
func TestStyleContrast(t *testing.T) {
	// A short text sits where the layout centers it; a long one fills the
	// text's whole region, from its top to its bottom.
	texts := [][2]string{{"T", "x"}, {sampleTitle, strings.Repeat("Bounded queues. ", 90)}}
	for _, s := range genpipe.Styles {
		for _, text := range texts {
			checkContrast(t, s, text[0], text[1])
		}
	}
}

// checkContrast samples the first slide of title and desc in style s.
func checkContrast(t *testing.T, s genpipe.Style, title, desc string) {
	th, err := newTheme(s)
	if err != nil {
		t.Fatal(err)
	}
	// The first slide, as Render draws it for the PNG.
	lay := newLayout(th, newTypesetter(), image.Pt(64, 64), title, cleanText(desc))
	img := image.NewRGBA(image.Rect(0, 0, slideW, slideH))
	drawPage(img, th, lay, 0, scaleImage(testImage(64, 64), lay.image))
	for _, part := range []struct {
		name  string
		b     textBlock
		lines []placed
		c     color.RGBA
	}{{"title", lay.title, lay.pages[0].title, th.title}, {"body", lay.body, lay.pages[0].body, th.text}} {
		if len(part.lines) == 0 {
			t.Fatalf("style %s: no %s", s.ID, part.name)
		}
		worst := math.Inf(1)
		for _, pl := range part.lines {
			for y := int(pl.y); y < int(pl.y+part.b.lineHeight); y++ {
				for _, x := range []int{int(pl.x) - 8, int(pl.x+pl.line.width) + 8, int(part.b.x+part.b.w) - 2, int(part.b.x) + 1} {
					if x < int(part.b.x) || x >= int(part.b.x+part.b.w) || float64(x) > pl.x-4 && float64(x) < pl.x+pl.line.width+4 {
						continue // beyond the column, or on the text
					}
					bg := img.RGBAAt(x, y)
					worst = math.Min(worst, contrast(part.c, bg))
				}
			}
		}
		t.Logf("%s %s (%d characters): %.2f:1", s.ID, part.name, len(desc), worst)
		if worst < 4.5 {
			t.Errorf("style %s: %s contrast %.2f:1 somewhere behind the text; want at least 4.5:1", s.ID, part.name, worst)
		}
	}
}
