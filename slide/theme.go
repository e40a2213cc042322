package slide

import (
	"bytes"
	"fmt"
	"image/color"
	"strconv"
	"sync"

	"github.com/genpipe/genpipe"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/gofont/gosmallcaps"

	"github.com/go-text/typesetting/font"
)

// theme is a genpipe.Style checked and decoded into what the renderers use.
type theme struct {
	bgTop, bgBottom, title, text, accent color.RGBA
	titleFont, bodyFont                  *goFont
	imageLeft                            bool
	layout                               string // split, band or centered
	band                                 color.RGBA
}

// goFont is one Go font: its parsed form for shaping and drawing, and how
// the PPTX should ask for a similar font.
type goFont struct {
	name      string // unique
	ttf       []byte
	sfnt      *font.Font
	office    string // typeface named in the PPTX
	bold      bool
	smallCaps bool
}

// weight picks a fallback font's regular or bold file.
func (f *goFont) weight() int {
	if f.bold || f.smallCaps {
		return 1 // small caps titles rely on weight: their fallbacks are bold
	}
	return 0
}

// families maps Style.Font to its title and body fonts. Go Smallcaps has no
// bold, so that style's title relies on the capitals for weight; its body
// is set in regular type, as a paragraph all in small capitals is hard to
// read.
var families = map[string][2]string{
	"sans":      {"gobold", "goregular"},
	"mono":      {"gomonobold", "gomono"},
	"smallcaps": {"gosmallcaps", "goregular"},
}

// goFonts parses the Go fonts once: parsing is the costly part, and a parsed
// opentype.Font is safe for concurrent use (faces are made per render).
var goFonts = sync.OnceValues(func() (map[string]*goFont, error) {
	fonts := map[string]*goFont{
		"goregular":   {ttf: goregular.TTF, office: "Arial"},
		"gobold":      {ttf: gobold.TTF, office: "Arial", bold: true},
		"gomono":      {ttf: gomono.TTF, office: "Courier New"},
		"gomonobold":  {ttf: gomonobold.TTF, office: "Courier New", bold: true},
		"gosmallcaps": {ttf: gosmallcaps.TTF, office: "Arial", smallCaps: true},
	}
	for name, f := range fonts {
		parsed, err := parseGoFont(f.ttf)
		if err != nil {
			return nil, fmt.Errorf("slide: parse font %s: %w", name, err)
		}
		f.name, f.sfnt = name, parsed
	}
	return fonts, nil
})

func newTheme(s genpipe.Style) (*theme, error) {
	th := &theme{}
	for _, c := range []struct {
		field, value string
		dst          *color.RGBA
	}{
		{"backgroundTop", s.BackgroundTop, &th.bgTop},
		{"backgroundBottom", s.BackgroundBottom, &th.bgBottom},
		{"titleColor", s.TitleColor, &th.title},
		{"textColor", s.TextColor, &th.text},
		{"accentColor", s.AccentColor, &th.accent},
	} {
		rgb, ok := parseHex(c.value)
		if !ok {
			return nil, errInvalid("style %q: %s %q is not a #rrggbb color", s.ID, c.field, c.value)
		}
		*c.dst = rgb
	}

	fam, ok := families[s.Font]
	if !ok {
		return nil, errInvalid("style %q: font %q is not sans, smallcaps or mono", s.ID, s.Font)
	}
	fonts, err := goFonts()
	if err != nil {
		return nil, err
	}
	th.titleFont, th.bodyFont = fonts[fam[0]], fonts[fam[1]]

	switch s.Layout {
	case "", "split":
		th.layout = "split"
	case "band", "centered":
		th.layout = s.Layout
	default:
		return nil, errInvalid("style %q: layout %q is not split, band or centered", s.ID, s.Layout)
	}
	// The band is the gradient's top darkened, so the title on it reads
	// at least as well as on the background.
	th.band = lerp(th.bgTop, color.RGBA{A: 0xff}, 0.35)

	switch s.ImageSide {
	case "left":
		th.imageLeft = true
	case "right":
	default:
		return nil, errInvalid("style %q: imageSide %q is not left or right", s.ID, s.ImageSide)
	}
	return th, nil
}

func parseGoFont(ttf []byte) (*font.Font, error) {
	face, err := font.ParseTTF(bytes.NewReader(ttf))
	if err != nil {
		return nil, err
	}
	return face.Font, nil
}

// parseHex reads "#rrggbb" (either case).
func parseHex(s string) (color.RGBA, bool) {
	if len(s) != 7 || s[0] != '#' {
		return color.RGBA{}, false
	}
	v, err := strconv.ParseUint(s[1:], 16, 32)
	if err != nil {
		return color.RGBA{}, false
	}
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}, true
}

// hex is c as DrawingML wants it: "RRGGBB".
func hex(c color.RGBA) string {
	return fmt.Sprintf("%02X%02X%02X", c.R, c.G, c.B)
}

// lerp blends a into b; t runs from 0 (a) to 1 (b).
func lerp(a, b color.RGBA, t float64) color.RGBA {
	mix := func(x, y uint8) uint8 { return uint8(float64(x) + (float64(y)-float64(x))*t + 0.5) }
	return color.RGBA{R: mix(a.R, b.R), G: mix(a.G, b.G), B: mix(a.B, b.B), A: 0xff}
}
