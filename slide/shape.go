package slide

import (
	"math"
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
	glyphs  map[glyphKey]font.GlyphData
}

type glyphKey struct {
	face *font.Face
	gid  font.GID
}

func newTypesetter() *typesetter {
	return &typesetter{faces: make(map[*font.Font]*font.Face), glyphs: make(map[glyphKey]font.GlyphData)}
}

// glyph is the face's outline or bitmap of gid, decoded once per render:
// the PNG and the PDF of every slide draw the same glyphs.
func (ts *typesetter) glyph(face *font.Face, gid font.GID) font.GlyphData {
	k := glyphKey{face, gid}
	d, ok := ts.glyphs[k]
	if !ok {
		d = face.GlyphData(gid)
		ts.glyphs[k] = d
	}
	return d
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

// shapedPara is a paragraph shaped at some size, ready to be wrapped.
type shapedPara struct {
	runes []rune
	dir   di.Direction
	outs  []shaping.Output
	size  float64
}

// shapeText shapes text (paragraphs separated by \n; empty ones are blank
// lines) at size px.
func (ts *typesetter) shapeText(text string, fm fontmap, size float64) []shapedPara {
	var paras []shapedPara
	for para := range strings.SplitSeq(text, "\n") {
		p := shapedPara{runes: []rune(para), size: size}
		if len(p.runes) > 0 {
			p.dir = baseDirection(p.runes)
			in := shaping.Input{Text: p.runes, RunEnd: len(p.runes), Direction: p.dir, Size: fixed.Int26_6(size * 64)}
			items := ts.seg.Split(in, fm)
			p.outs = make([]shaping.Output, len(items))
			for i, it := range items {
				p.outs[i] = ts.shaper.Shape(it)
			}
		}
		paras = append(paras, p)
	}
	return paras
}

// setText shapes text at size px and wraps it into lines at most maxW px
// wide.
func (ts *typesetter) setText(text string, fm fontmap, size, maxW float64) []shapedLine {
	return ts.wrapText(ts.shapeText(text, fm, size), size, maxW)
}

// wrapText wraps shaped paragraphs into lines at most maxW px wide, at
// size px. Without hinting, shaped text scales linearly with its size, so
// a block tried at several sizes is shaped once and scaled.
func (ts *typesetter) wrapText(paras []shapedPara, size, maxW float64) []shapedLine {
	var lines []shapedLine
	for _, p := range paras {
		if len(p.runes) == 0 {
			lines = append(lines, shapedLine{paraEnd: true})
			continue
		}
		// A copy even at the shaped size: the wrapper zeroes the advance
		// of the spaces it breaks lines at, in the glyphs it is given.
		outs := make([]shaping.Output, len(p.outs))
		for i, o := range p.outs {
			outs[i] = scaleOutput(o, size/p.size)
		}
		lines = ts.wrapParagraph(lines, p, outs, maxW)
	}
	return lines
}

// scaleOutput is o scaled by k, as if shaped at k times its size.
func scaleOutput(o shaping.Output, k float64) shaping.Output {
	s := func(v fixed.Int26_6) fixed.Int26_6 { return fixed.Int26_6(math.Round(float64(v) * k)) }
	o.Advance, o.Size = s(o.Advance), s(o.Size)
	o.LineBounds = shaping.Bounds{Ascent: s(o.LineBounds.Ascent), Descent: s(o.LineBounds.Descent), Gap: s(o.LineBounds.Gap)}
	o.GlyphBounds = shaping.Bounds{Ascent: s(o.GlyphBounds.Ascent), Descent: s(o.GlyphBounds.Descent), Gap: s(o.GlyphBounds.Gap)}
	glyphs := make([]shaping.Glyph, len(o.Glyphs))
	for i, g := range o.Glyphs {
		g.Width, g.Height, g.XBearing, g.YBearing = s(g.Width), s(g.Height), s(g.XBearing), s(g.YBearing)
		g.Advance, g.XAdvance, g.YAdvance = s(g.Advance), s(g.XAdvance), s(g.YAdvance)
		g.XOffset, g.YOffset = s(g.XOffset), s(g.YOffset)
		glyphs[i] = g
	}
	o.Glyphs = glyphs
	return o
}

func (ts *typesetter) wrapParagraph(lines []shapedLine, p shapedPara, outs []shaping.Output, maxW float64) []shapedLine {
	runes, dir := p.runes, p.dir
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
