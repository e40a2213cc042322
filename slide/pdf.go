package slide

import (
	"bytes"
	"fmt"
	"image/color"
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
// embed the CFF outlines of the CJK fonts). Color emoji are images.
func pdfText(pdf *fpdf.Fpdf, ts *typesetter, b textBlock, lines []placed, c color.RGBA) {
	pdf.SetFillColor(int(c.R), int(c.G), int(c.B))
	for _, pl := range lines {
		open := false
		eachGlyph(pl.line, pl.x, pl.y+b.baseline, func(face *font.Face, g *shaping.Glyph, size, gx, gy float64) {
			switch d := ts.glyph(face, g.GlyphID).(type) {
			case font.GlyphOutline:
				open = pdfOutline(pdf, d, size/float64(face.Upem()), gx, gy) || open
			case font.GlyphBitmap:
				pdfBitmap(pdf, face, g, d, glyphBox(g, size, gx, gy))
			}
		})
		if open {
			pdf.DrawPath("F") // nonzero winding, as the fonts are drawn
		}
	}
}

// pdfOutline adds the glyph's contours to the current path, in points.
func pdfOutline(pdf *fpdf.Fpdf, o font.GlyphOutline, scale, x, y float64) bool {
	p := func(a font.SegmentPoint) (float64, float64) {
		return (x + float64(a.X)*scale) * pt, (y - float64(a.Y)*scale) * pt
	}
	for _, s := range o.Segments {
		switch s.Op {
		case ot.SegmentOpMoveTo:
			pdf.MoveTo(p(s.Args[0]))
		case ot.SegmentOpLineTo:
			pdf.LineTo(p(s.Args[0]))
		case ot.SegmentOpQuadTo:
			ax, ay := p(s.Args[0])
			bx, by := p(s.Args[1])
			pdf.CurveTo(ax, ay, bx, by)
		case ot.SegmentOpCubeTo:
			ax, ay := p(s.Args[0])
			bx, by := p(s.Args[1])
			cx, cy := p(s.Args[2])
			pdf.CurveBezierCubicTo(ax, ay, bx, by, cx, cy)
		}
	}
	return len(o.Segments) > 0
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
