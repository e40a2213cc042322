package slide

import (
	"bytes"
	"fmt"
	"image/color"
	"strconv"
	"strings"
	"unicode"

	"codeberg.org/go-pdf/fpdf"
	"github.com/go-text/typesetting/font"
	ot "github.com/go-text/typesetting/font/opentype"
	"github.com/go-text/typesetting/shaping"
)

// pt is PDF points per PNG pixel: the page is 960×540 pt, the 13.333×7.5 in
// of a 16:9 PowerPoint slide.
const pt = 0.5

func renderPDF(th *theme, lay *layout, picPNG []byte, title string) (out []byte, err error) {
	// fpdf has panicked on unusual text before; a bad slide must fail one
	// request, not the worker.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("slide: encode pdf: fpdf panicked: %v", r)
		}
	}()
	pdf := fpdf.NewCustom(&fpdf.InitType{
		OrientationStr: "L",
		UnitStr:        "pt",
		// fpdf takes sizes as portrait and turns them for "L".
		Size: fpdf.SizeType{Wd: slideH * pt, Ht: slideW * pt},
	})
	pdf.SetMargins(0, 0, 0)
	pdf.SetAutoPageBreak(false, 0)
	pdf.SetTitle(bmpOnly(title), true)
	pdf.SetCreator("genpipe", true)
	for n := range lay.pages {
		pdfPage(pdf, th, lay, n, picPNG)
	}

	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("slide: encode pdf: %w", err)
	}
	return buf.Bytes(), nil
}

// pdfPage draws page n of the deck as renderPNG does.
func pdfPage(pdf *fpdf.Fpdf, th *theme, lay *layout, n int, picPNG []byte) {
	pdf.AddPage()
	// Normalized gradient coordinates start at the bottom left: (0,1) is
	// the top edge, where color 1 begins.
	t, b := th.bgTop, th.bgBottom
	pdf.LinearGradient(0, 0, slideW*pt, slideH*pt,
		int(t.R), int(t.G), int(t.B), int(b.R), int(b.G), int(b.B), 0, 1, 0, 0)

	if r := lay.band; r != nil {
		pdf.SetFillColor(int(th.band.R), int(th.band.G), int(th.band.B))
		pdf.Rect(r.x*pt, r.y*pt, r.w*pt, r.h*pt, "F")
	}
	pg := lay.pages[n]
	if pg.picture {
		drawPicture(pdf, lay.image, picPNG, th.accent)
	}
	if r := pg.rule; r != nil {
		pdf.SetFillColor(int(th.accent.R), int(th.accent.G), int(th.accent.B))
		pdf.Rect(r.x*pt, r.y*pt, r.w*pt, r.h*pt, "F")
	}
	pdfText(pdf, lay.ts, lay.title, pg.title, th.title)
	pdfText(pdf, lay.ts, lay.body, pg.body, th.text)
}

// drawPicture places the picture and strokes the frame around it; the
// stroke is centered on its path, so the path runs half a frame outside.
func drawPicture(pdf *fpdf.Fpdf, r rect, picPNG []byte, accent color.RGBA) {
	opt := fpdf.ImageOptions{ImageType: "PNG"}
	pdf.RegisterImageOptionsReader("picture", opt, bytes.NewReader(picPNG))
	pdf.ImageOptions("picture", r.x*pt, r.y*pt, r.w*pt, r.h*pt, false, opt, 0, "")

	pdf.SetDrawColor(int(accent.R), int(accent.G), int(accent.B))
	pdf.SetLineWidth(frameW * pt)
	half := frameW / 2.0
	pdf.Rect((r.x-half)*pt, (r.y-half)*pt, (r.w+frameW)*pt, (r.h+frameW)*pt, "D")
}

// pdfText draws the lines' glyphs as filled paths, the very outlines the
// PNG rasterizes: the same shaping, any script, and no font embedded at
// all (fpdf places characters, not the glyphs a shaper chooses, and cannot
// embed the CFF outlines of the CJK fonts). Each glyph is its path in its
// own coordinates, moved into place, so a glyph drawn again is the same
// bytes, which the stream's compression all but removes. Color emoji are
// images.
func pdfText(pdf *fpdf.Fpdf, ts *typesetter, b textBlock, lines []placed, c color.RGBA) {
	pdf.SetFillColor(int(c.R), int(c.G), int(c.B))
	paths := map[glyphKey]string{}
	for _, pl := range lines {
		eachGlyph(pl.line, pl.x, pl.y+b.baseline, func(face *font.Face, g *shaping.Glyph, size, gx, gy float64) {
			switch d := ts.glyph(face, g.GlyphID).(type) {
			case font.GlyphOutline:
				k := glyphKey{face, g.GlyphID}
				path, ok := paths[k]
				if !ok {
					path = pdfPath(d, size*pt/float64(face.Upem()))
					paths[k] = path
				}
				if path != "" {
					// PDF's own coordinates: points, from the bottom left.
					pdf.RawWriteStr("q 1 0 0 1 " + pdfNum(gx*pt) + " " + pdfNum((slideH-gy)*pt) + " cm\n" + path + "f Q")
				}
			case font.GlyphBitmap:
				pdfBitmap(pdf, face, g, d, glyphBox(g, size, gx, gy))
			}
		})
	}
}

// pdfPath is the outline as PDF path operators in points, y up, from the
// glyph's origin; quadratic curves become the cubic ones PDF has.
func pdfPath(o font.GlyphOutline, scale float64) string {
	var b strings.Builder
	var cx, cy float64 // the current point
	pt := func(a font.SegmentPoint) (float64, float64) { return float64(a.X) * scale, float64(a.Y) * scale }
	put := func(op string, v ...float64) {
		for _, x := range v {
			b.WriteString(pdfNum(x))
			b.WriteByte(' ')
		}
		b.WriteString(op)
		b.WriteByte('\n')
	}
	for _, s := range o.Segments {
		switch s.Op {
		case ot.SegmentOpMoveTo:
			cx, cy = pt(s.Args[0])
			put("m", cx, cy)
		case ot.SegmentOpLineTo:
			cx, cy = pt(s.Args[0])
			put("l", cx, cy)
		case ot.SegmentOpQuadTo:
			qx, qy := pt(s.Args[0])
			x, y := pt(s.Args[1])
			put("c", cx+2*(qx-cx)/3, cy+2*(qy-cy)/3, x+2*(qx-x)/3, y+2*(qy-y)/3, x, y)
			cx, cy = x, y
		case ot.SegmentOpCubeTo:
			ax, ay := pt(s.Args[0])
			bx, by := pt(s.Args[1])
			cx, cy = pt(s.Args[2])
			put("c", ax, ay, bx, by, cx, cy)
		}
	}
	return b.String()
}

// pdfNum writes v with two decimals, a hundredth of a point, without
// trailing zeros.
func pdfNum(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// pdfBitmap places a PNG glyph, registered once per document.
func pdfBitmap(pdf *fpdf.Fpdf, face *font.Face, g *shaping.Glyph, d font.GlyphBitmap, box rect) {
	if d.Format != font.PNG {
		return
	}
	name := fmt.Sprintf("glyph-%p-%d", face, g.GlyphID)
	opt := fpdf.ImageOptions{ImageType: "PNG"}
	if pdf.GetImageInfo(name) == nil {
		pdf.RegisterImageOptionsReader(name, opt, bytes.NewReader(d.Data))
	}
	pdf.ImageOptions(name, box.x*pt, box.y*pt, box.w*pt, box.h*pt, false, opt, 0, "")
}

// bmpOnly replaces runes beyond the Basic Multilingual Plane (emoji, rare
// CJK) in the document's title metadata with U+FFFD: fpdf's UTF-16
// conversion has no surrogate pairs.
func bmpOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r > 0xFFFF {
			return unicode.ReplacementChar
		}
		return r
	}, s)
}
