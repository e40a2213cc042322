package slide

import (
	"bytes"
	"image"
	"image/color"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/go-text/typesetting/font"
	"github.com/go-text/typesetting/shaping"
)

// scripts are a sample of each script slides support, each of distinct
// characters.
var scripts = []struct{ name, text string }{
	{"Latin", "Überblick"},
	{"Greek", "Ελληνικά"},
	{"Cyrillic", "Привет"},
	{"CJK", "市場分析"},
	{"Arabic", "مرحبا بكم"},
	{"Hebrew", "שלום עולם"},
	{"Devanagari", "नमस्ते दुनिया"},
	{"Thai", "สวัสดีครับ"},
	{"emoji", "🚀🎉"},
}

// requireFonts skips a test that needs the Debian fonts when they are not
// installed, unless GENPIPE_REQUIRE_FONTS=1 makes that a failure.
func requireFonts(t *testing.T) {
	t.Helper()
	missing := MissingFonts()
	if len(missing) == 0 {
		return
	}
	var pkgs, scripts []string
	for _, m := range missing {
		if !slices.Contains(pkgs, m.Package) {
			pkgs = append(pkgs, m.Package)
		}
		scripts = append(scripts, m.Scripts)
	}
	msg := "no font for " + strings.Join(scripts, ", ") + ": apt-get install " + strings.Join(pkgs, " ") +
		" (GENPIPE_REQUIRE_FONTS=1 makes this a failure)"
	if os.Getenv("GENPIPE_REQUIRE_FONTS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func setSample(t *testing.T, ts *typesetter, text string) []shapedLine {
	t.Helper()
	fonts, err := goFonts()
	if err != nil {
		t.Fatal(err)
	}
	return ts.setText(text, fontmap{ts: ts, primary: fonts["goregular"].sfnt}, 60, 4000)
}

// glyphs lists the line's glyphs, left to right, with their faces.
func glyphs(l *shapedLine) (out []struct {
	face *font.Face
	g    shaping.Glyph
	x    float64
}) {
	eachGlyph(l, 0, 0, func(face *font.Face, g *shaping.Glyph, _, x, _ float64) {
		out = append(out, struct {
			face *font.Face
			g    shaping.Glyph
			x    float64
		}{face, *g, x})
	})
	return out
}

// drawRune draws text alone on a white canvas and returns the canvas.
func drawSample(t *testing.T, text string) *image.RGBA {
	t.Helper()
	ts := newTypesetter()
	lines := setSample(t, ts, text)
	dst := image.NewRGBA(image.Rect(0, 0, 400, 120))
	fill(dst, dst.Rect, color.RGBA{255, 255, 255, 255})
	newPainter(dst, ts).line(&lines[0], 10, 90, color.RGBA{0, 0, 0, 255})
	return dst
}

func inked(img *image.RGBA) int {
	n := 0
	for i := 0; i < len(img.Pix); i += 4 {
		if img.Pix[i] < 128 || img.Pix[i+1] < 128 || img.Pix[i+2] < 128 {
			n++
		}
	}
	return n
}

// Every script's text is set in a font that has it (no glyph is .notdef,
// the box), and distinct characters draw distinct, non-empty pixels, none
// of them the box a missing glyph draws.
func TestScriptsAreVisible(t *testing.T) {
	requireFonts(t)
	box := drawSample(t, "\uE000") // a private-use rune: no font has it
	for _, sc := range scripts {
		t.Run(sc.name, func(t *testing.T) {
			lines := setSample(t, newTypesetter(), sc.text)
			if len(lines) != 1 {
				t.Fatalf("%d lines", len(lines))
			}
			for _, g := range glyphs(&lines[0]) {
				if g.g.GlyphID == 0 {
					t.Errorf("%q: a glyph is .notdef (a box) in %s", sc.text, g.face.Describe().Family)
				}
			}
			seen, done := map[string]string{}, map[rune]bool{}
			for _, r := range sc.text {
				if r == ' ' || done[r] {
					continue
				}
				done[r] = true
				img := drawSample(t, string(r))
				if inked(img) == 0 {
					t.Errorf("%q draws nothing", r)
				}
				if bytes.Equal(img.Pix, box.Pix) {
					t.Errorf("%q draws the missing-glyph box", r)
				}
				key := string(img.Pix)
				if other, ok := seen[key]; ok {
					t.Errorf("%q and %q draw the same pixels", r, other)
				}
				seen[key] = string(r)
			}
		})
	}
}

// Right-to-left text runs right to left: in "שלום" the first letter, ש,
// is drawn rightmost; an Arabic or Hebrew paragraph ends at the column's
// right edge.
func TestRightToLeftOrder(t *testing.T) {
	requireFonts(t)
	ts := newTypesetter()
	for _, text := range []string{"שלום", "مرحبا"} {
		lines := setSample(t, ts, text)
		gs := glyphs(&lines[0])
		first := []rune(text)[0]
		var firstX, maxX float64
		for _, g := range gs {
			if g.g.TextIndex() == 0 {
				firstX = g.x
			}
			maxX = max(maxX, g.x)
		}
		if firstX != maxX {
			t.Errorf("%q: the first letter %q is at x=%.0f, not rightmost (%.0f)", text, first, firstX, maxX)
		}
		b := textBlock{w: 1000}
		if !lines[0].rtl || b.at(&lines[0], 0, 0).x <= 0 {
			t.Errorf("%q: the line is not aligned right", text)
		}
	}
	if lines := setSample(t, ts, "Hello שלום"); lines[0].rtl {
		t.Error("a paragraph starting in Latin runs right to left")
	}
}

// Arabic letters join and Devanagari forms conjuncts: the shaped glyphs
// are not the characters' nominal glyphs one by one.
func TestComplexScriptsAreShaped(t *testing.T) {
	requireFonts(t)
	ts := newTypesetter()
	for _, text := range []string{"بيت", "क्षत्रिय", "สวัสดี"} {
		lines := setSample(t, ts, text)
		gs := glyphs(&lines[0])
		var shaped, nominal []font.GID
		for _, g := range gs {
			shaped = append(shaped, g.g.GlyphID)
		}
		for _, r := range text {
			gid, _ := gs[0].face.NominalGlyph(r)
			nominal = append(nominal, gid)
		}
		if equalGIDs(shaped, nominal) && !strings.HasPrefix(text, "ส") {
			t.Errorf("%q: shaped glyphs %v are the nominal ones: not shaped", text, shaped)
		}
	}
}

func equalGIDs(a, b []font.GID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A slide in every script renders in all three formats: the PDF draws the
// glyphs as paths and embeds no font (before, the Go fonts were embedded
// whole, about 410 KB), and the PPTX names the east-Asian and
// complex-script fonts.
func TestEveryScriptSlide(t *testing.T) {
	requireFonts(t)
	var all []string
	for _, sc := range scripts {
		all = append(all, sc.name+": "+sc.text)
	}
	all = append(all, "שלום עולם: a paragraph that starts right to left")
	title := "Überblick — 市場分析 2027 🚀"
	f := mustRender(t, testImage(64, 64), genpipe.Styles[0], title, strings.Join(all, "\n"))
	checkPNG(t, f.PNG, genpipe.Styles[0])
	checkPDF(t, f.PDF)
	if bytes.Contains(f.PDF, []byte("/FontFile")) {
		t.Error("the PDF embeds a font")
	}
	if len(f.PDF) > 200<<10 {
		t.Errorf("the PDF is %d KB; want at most 200", len(f.PDF)>>10)
	}
	t.Logf("PDF %d KB", len(f.PDF)>>10)
	checkPPTX(t, f.PPTX)
	sl := readPart(t, f.PPTX, "ppt/slides/slide1.xml")
	for _, want := range []string{`<a:ea typeface="Noto Sans CJK SC"/>`, `<a:cs typeface="Noto Sans Arabic"/>`,
		`<a:cs typeface="Noto Sans Devanagari"/>`, `rtl="1"`, "市場分析", "🚀"} {
		if !bytes.Contains(sl, []byte(want)) {
			t.Errorf("the PPTX slide lacks %s", want)
		}
	}
}
