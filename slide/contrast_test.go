package slide

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
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
// lies behind them: the rendered background sampled down the whole text
// column, from the top margin to the bottom one, across the gradient.
func TestStyleContrast(t *testing.T) {
	for _, s := range genpipe.Styles {
		th, err := newTheme(s)
		if err != nil {
			t.Fatal(err)
		}
		f := mustRender(t, testImage(64, 64), s, "", "x")
		img, err := png.Decode(bytes.NewReader(f.PNG))
		if err != nil {
			t.Fatal(err)
		}
		lay := newLayout(th, newTypesetter(), image.Pt(64, 64), "", "x")
		x := int(lay.textX) + textColW - 2
		worst := map[string]float64{"title": math.Inf(1), "body": math.Inf(1)}
		for y := margin; y < slideH-margin; y++ {
			bg := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			worst["title"] = math.Min(worst["title"], contrast(th.title, bg))
			worst["body"] = math.Min(worst["body"], contrast(th.text, bg))
		}
		for part, c := range worst {
			t.Logf("%s %s: %.2f:1", s.ID, part, c)
			if c < 4.5 {
				t.Errorf("style %s: %s contrast %.2f:1 somewhere behind the text; want at least 4.5:1", s.ID, part, c)
			}
		}
	}
}
