package slide

import (
	"sort"
	"strings"

	"github.com/go-text/typesetting/di"
	"github.com/go-text/typesetting/font"
	"github.com/go-text/typesetting/shaping"
	"golang.org/x/image/math/fixed"
	"golang.org/x/text/unicode/bidi"
)

// typesetter shapes and wraps text for one render: HarfBuzz shaping (joined
// Arabic, Devanagari conjuncts, Thai marks), itemized by direction, script
// and font, and broken into lines at the Unicode line-break opportunities.
// It holds the faces of the fonts it used: a font.Face caches glyph data
// and is not safe for concurrent use, so each render has its own.
type typesetter struct {
	shaper  shaping.HarfbuzzShaper
	seg     shaping.Segmenter
	wrapper shaping.LineWrapper
	faces   map[*font.Font]*font.Face
}

func newTypesetter() *typesetter {
	return &typesetter{faces: make(map[*font.Font]*font.Face)}
}

func (ts *typesetter) face(f *font.Font) *font.Face {
	fc, ok := ts.faces[f]
	if !ok {
		fc = font.NewFace(f)
		ts.faces[f] = fc
	}
	return fc
}

// fontmap picks each rune's face: the style's font when it has the rune,
// else the first fallback that has it, else the style's font (a box).
type fontmap struct {
	ts      *typesetter
	primary *font.Font
	weight  int // 0 regular, 1 bold: which of a fallback's files
}

func (m fontmap) ResolveFace(r rune) *font.Face {
	if _, ok := m.primary.NominalGlyph(r); ok {
		return m.ts.face(m.primary)
	}
	for i := range fallbacks {
		if f := fallbackFonts[i][m.weight](); f != nil {
			if _, ok := f.NominalGlyph(r); ok {
				return m.ts.face(f)
			}
		}
	}
	return m.ts.face(m.primary)
}

// shapedLine is one line of set text.
type shapedLine struct {
	runs    []shaping.Output // left to right as drawn
	width   float64          // px
	rtl     bool             // its paragraph runs right to left: align right
	text    string           // what it shows, in logical order, for the PPTX
	paraEnd bool             // the last line of its paragraph
}

// setText shapes text (paragraphs separated by \n; empty ones are blank
// lines) at size px and wraps it into lines at most maxW px wide.
func (ts *typesetter) setText(text string, fm fontmap, size, maxW float64) []shapedLine {
	var lines []shapedLine
	for para := range strings.SplitSeq(text, "\n") {
		lines = ts.setParagraph(lines, []rune(para), fm, size, maxW)
	}
	return lines
}

func (ts *typesetter) setParagraph(lines []shapedLine, runes []rune, fm fontmap, size, maxW float64) []shapedLine {
	if len(runes) == 0 {
		return append(lines, shapedLine{paraEnd: true})
	}
	dir := baseDirection(runes)
	in := shaping.Input{Text: runes, RunEnd: len(runes), Direction: dir, Size: fixed.Int26_6(size * 64)}
	items := ts.seg.Split(in, fm)
	outs := make([]shaping.Output, len(items))
	for i, it := range items {
		outs[i] = ts.shaper.Shape(it)
	}
	ts.wrapper.Prepare(shaping.WrapConfig{Direction: dir, BreakPolicy: shaping.WhenNecessary}, runes, shaping.NewSliceIterator(outs))
	start := 0
	for {
		wl, done := ts.wrapper.WrapNextLineF(fixed.Int26_6(maxW * 64))
		if len(wl.Line) == 0 && done {
			break
		}
		l := shapedLine{runs: append([]shaping.Output(nil), wl.Line...), rtl: dir.Progression() == di.TowardTopLeft}
		sort.SliceStable(l.runs, func(i, j int) bool { return l.runs[i].VisualIndex < l.runs[j].VisualIndex })
		var w fixed.Int26_6
		for _, r := range l.runs {
			w += r.Advance
		}
		l.width = float64(w) / 64
		end := min(max(wl.NextLine, start), len(runes))
		l.text = string(runes[start:end])
		start = end
		lines = append(lines, l)
		if done {
			break
		}
	}
	if len(lines) > 0 {
		lines[len(lines)-1].paraEnd = true
	}
	return lines
}

// baseDirection is the paragraph's direction by its first strong
// character (rules P2 and P3 of the Unicode bidi algorithm).
func baseDirection(runes []rune) di.Direction {
	for _, r := range runes {
		p, _ := bidi.LookupRune(r)
		switch p.Class() {
		case bidi.L:
			return di.DirectionLTR
		case bidi.R, bidi.AL:
			return di.DirectionRTL
		}
	}
	return di.DirectionLTR
}
