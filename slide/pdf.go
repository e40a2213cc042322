package slide

import (
	"bytes"
	"fmt"
	"image/color"
	"strings"
	"unicode"

	"codeberg.org/go-pdf/fpdf"
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
	pdf.AddPage()

	// Normalized gradient coordinates start at the bottom left: (0,1) is
	// the top edge, where color 1 begins.
	t, b := th.bgTop, th.bgBottom
	pdf.LinearGradient(0, 0, slideW*pt, slideH*pt,
		int(t.R), int(t.G), int(t.B), int(b.R), int(b.G), int(b.B), 0, 1, 0, 0)

	drawPicture(pdf, lay.image, picPNG, th.accent)
	pdf.SetFillColor(int(th.accent.R), int(th.accent.G), int(th.accent.B))
	pdf.Rect(lay.rule.x*pt, lay.rule.y*pt, lay.rule.w*pt, lay.rule.h*pt, "F")

	fonts := map[string]bool{}
	pdfText(pdf, fonts, lay.title, th.title)
	pdfText(pdf, fonts, lay.body, th.text)

	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("slide: encode pdf: %w", err)
	}
	return buf.Bytes(), nil
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

// pdfText writes the block's lines at the PNG's baselines. The font is the
// same Go font, embedded (subset) as UTF-8, so non-Latin text survives.
func pdfText(pdf *fpdf.Fpdf, fonts map[string]bool, b textBlock, c color.RGBA) {
	if len(b.lines) == 0 {
		return
	}
	if !fonts[b.font.name] {
		pdf.AddUTF8FontFromBytes(b.font.name, "", b.font.ttf)
		fonts[b.font.name] = true
	}
	pdf.SetFont(b.font.name, "", b.size*pt)
	pdf.SetTextColor(int(c.R), int(c.G), int(c.B))
	for i, line := range b.lines {
		y := b.box.y + b.baseline + float64(i)*b.lineHeight
		pdf.Text(b.box.x*pt, y*pt, bmpOnly(line))
	}
}

// bmpOnly replaces runes beyond the Basic Multilingual Plane (emoji, rare
// CJK) with U+FFFD: fpdf's UTF-8 fonts index a 64 Ki table by rune and panic
// on anything larger. The Go fonts have no glyphs for them anyway.
func bmpOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r > 0xFFFF {
			return unicode.ReplacementChar
		}
		return r
	}, s)
}
