package slide

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/go-text/typesetting/di"
)

// emu is English Metric Units per PNG pixel: 12192000 EMU across 1920 px.
const emu = 12192000 / slideW

// zipTime is every part's modification time, fixed so that the same slide
// renders to the same bytes.
var zipTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// pptxPart is one file of the package.
type pptxPart struct {
	name string
	body []byte
}

func renderPPTX(th *theme, lay *layout, picPNG []byte, title string) ([]byte, error) {
	themeXML, err := execute(themeTmpl, newThemeData(th))
	if err != nil {
		return nil, fmt.Errorf("slide: encode pptx theme: %w", err)
	}
	coreXML, err := execute(coreTmpl, title)
	if err != nil {
		return nil, fmt.Errorf("slide: encode pptx properties: %w", err)
	}
	nums := make([]int, len(lay.pages))
	for i := range nums {
		nums[i] = i + 1
	}
	var list [4][]byte
	for i, t := range []*template.Template{contentTypesTmpl, appTmpl, presentationTmpl, presentationRelsTmpl} {
		if list[i], err = execute(t, nums); err != nil {
			return nil, fmt.Errorf("slide: encode pptx %s: %w", t.Name(), err)
		}
	}
	// [Content_Types].xml comes first, as readers that stream the zip expect.
	parts := []pptxPart{
		{"[Content_Types].xml", list[0]},
		{"_rels/.rels", []byte(rootRelsXML)},
		{"docProps/app.xml", list[1]},
		{"docProps/core.xml", coreXML},
		{"ppt/presentation.xml", list[2]},
		{"ppt/_rels/presentation.xml.rels", list[3]},
		{"ppt/presProps.xml", []byte(presPropsXML)},
		{"ppt/viewProps.xml", []byte(viewPropsXML)},
		{"ppt/tableStyles.xml", []byte(tableStylesXML)},
	}
	for n := range lay.pages {
		slideXML, err := execute(slideTmpl, newSlideData(th, lay, n))
		if err != nil {
			return nil, fmt.Errorf("slide: encode pptx slide: %w", err)
		}
		rels := slideRelsXML
		if !lay.pages[n].picture {
			rels = slideRelsNoPictureXML
		}
		parts = append(parts,
			pptxPart{fmt.Sprintf("ppt/slides/slide%d.xml", n+1), slideXML},
			pptxPart{fmt.Sprintf("ppt/slides/_rels/slide%d.xml.rels", n+1), []byte(rels)})
	}
	parts = append(parts,
		pptxPart{"ppt/slideLayouts/slideLayout1.xml", []byte(slideLayoutXML)},
		pptxPart{"ppt/slideLayouts/_rels/slideLayout1.xml.rels", []byte(slideLayoutRelsXML)},
		pptxPart{"ppt/slideMasters/slideMaster1.xml", []byte(slideMasterXML)},
		pptxPart{"ppt/slideMasters/_rels/slideMaster1.xml.rels", []byte(slideMasterRelsXML)},
		pptxPart{"ppt/theme/theme1.xml", themeXML},
		pptxPart{"ppt/media/image1.png", picPNG})
	out, err := zipParts(parts)
	if err != nil {
		return nil, fmt.Errorf("slide: encode pptx: %w", err)
	}
	return out, nil
}

func zipParts(parts []pptxPart) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range parts {
		method := zip.Deflate
		if strings.HasSuffix(p.name, ".png") {
			method = zip.Store // already deflated
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: p.name, Method: method, Modified: zipTime})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(p.body); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func execute(t *template.Template, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// escape makes s XML character data. User text reaches the PPTX only
// through it.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // writing to a strings.Builder cannot fail
	return b.String()
}

func toEMU(px float64) int64 { return int64(math.Round(px * emu)) }

// box is a rectangle in EMU.
type box struct{ X, Y, W, H int64 }

func toBox(r rect) box { return box{toEMU(r.x), toEMU(r.y), toEMU(r.w), toEMU(r.h)} }

// textBox is a text shape of the slide.
type textBox struct {
	ID         int
	Name       string
	Box        box
	Paragraphs []paragraph
	Size       int // hundredths of a point
	LineSpace  int // thousandths of a percent of the font's single spacing
	Color      string
	Typeface   string
	Bold       bool
	SmallCaps  bool
	Center     bool
}

// paragraph is a paragraph of a text box, with the fonts its scripts need.
type paragraph struct {
	Box    *textBox
	Text   string
	RTL    bool
	EA, CS string // east-Asian and complex-script typefaces
}

type slideData struct {
	Top, Bottom, Accent string
	Picture, Frame      *box
	FrameW              int64
	Rule                *box
	Band                *box
	BandColor           string
	Title               *textBox
	Body                []*textBox // a box per column
}

func newSlideData(th *theme, lay *layout, n int) slideData {
	half := frameW / 2.0
	p := lay.image
	pg := lay.pages[n]
	d := slideData{
		Top: hex(th.bgTop), Bottom: hex(th.bgBottom), Accent: hex(th.accent),
		FrameW: toEMU(frameW),
	}
	if pg.picture {
		pic, frame := toBox(p), toBox(rect{p.x - half, p.y - half, p.w + frameW, p.h + frameW})
		d.Picture, d.Frame = &pic, &frame
	}
	if pg.rule != nil {
		r := toBox(*pg.rule)
		d.Rule = &r
	}
	if lay.band != nil {
		b := toBox(*lay.band)
		d.Band, d.BandColor = &b, hex(th.band)
	}
	d.Title = newTextBox(4, "Title", lay.title, pg.title, 0, hex(th.title))
	// The body box reaches the bottom of the text's region: a substitute
	// font set wider than the Go font then has room to spill into before
	// autofit shrinks it.
	for i, lines := range byColumn(pg.body) {
		d.Body = append(d.Body, newTextBox(5+10*i, "Description", lay.body, lines, lay.bottom, hex(th.text)))
	}
	return d
}

// newTextBox describes the lines of b on one slide for the PPTX, or returns
// nil when there are none.
func newTextBox(id int, name string, b textBlock, lines []placed, bottom float64, color string) *textBox {
	if len(lines) == 0 {
		return nil
	}
	top := lines[0].y
	h := max(float64(len(lines))*b.lineHeight, bottom-top)
	tb := &textBox{
		ID: id, Name: name, Box: toBox(rect{lines[0].col, top, b.w, h}), Center: b.center,
		Size: int(math.Round(b.size * pt * 100)),
		// PowerPoint's single spacing is about 1.2 times the size.
		LineSpace: int(math.Round(b.leading / 1.2 * 100000)),
		Color:     color, Typeface: b.font.office, Bold: b.font.bold, SmallCaps: b.font.smallCaps,
	}
	for _, text := range paragraphs(lines) {
		tb.Paragraphs = append(tb.Paragraphs, paragraph{Box: tb, Text: text,
			RTL: baseDirection([]rune(text)).Progression() == di.TowardTopLeft,
			EA:  eastAsianTypeface, CS: complexTypeface(text)})
	}
	return tb
}

// byColumn splits a page's lines by the column they are in.
func byColumn(lines []placed) [][]placed {
	var out [][]placed
	for i, pl := range lines {
		if i == 0 || pl.col != lines[i-1].col {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], pl)
	}
	return out
}

// eastAsianTypeface is the CJK fallback's family.
var eastAsianTypeface = fallbackFamily('市')

// complexTypeface is the family of the fallback for the first rune of text
// in a complex script (Arabic, Hebrew, Devanagari, Thai), or the Arabic one
// when there is none, so that text a user adds still has a font.
func complexTypeface(text string) string {
	for _, r := range text {
		if unicode.In(r, unicode.Arabic, unicode.Hebrew, unicode.Devanagari, unicode.Thai) {
			if f := fallbackFamily(r); f != "" {
				return f
			}
		}
	}
	return fallbackFamily('ب')
}

// fallbackFamily is the family of the fallback whose probe is in the same
// script as r.
func fallbackFamily(r rune) string {
	for _, fb := range fallbacks {
		for _, t := range []*unicode.RangeTable{unicode.Arabic, unicode.Hebrew, unicode.Devanagari, unicode.Thai, unicode.Han} {
			if unicode.Is(t, r) && unicode.Is(t, fb.probe) {
				return fb.family
			}
		}
	}
	return ""
}

type themeData struct {
	Dark, Light, Dark2, Light2, Accent, Accent2, Major, Minor string
	EA, CS                                                    string
}

// newThemeData gives the theme the style's colors and office fonts, so text
// a user adds to the slide in PowerPoint matches it.
func newThemeData(th *theme) themeData {
	return themeData{
		Dark: "000000", Light: "FFFFFF", Dark2: hex(th.bgBottom), Light2: hex(th.text),
		Accent: hex(th.accent), Accent2: hex(th.title),
		Major: th.titleFont.office, Minor: th.bodyFont.office,
		EA: eastAsianTypeface, CS: complexTypeface(""),
	}
}

var funcs = template.FuncMap{"esc": escape, "add": func(a, b int) int { return a + b }}

var (
	slideTmpl            = template.Must(template.New("slide").Funcs(funcs).Parse(slideXMLTmpl))
	contentTypesTmpl     = template.Must(template.New("content types").Funcs(funcs).Parse(contentTypesXMLTmpl))
	appTmpl              = template.Must(template.New("app").Funcs(funcs).Parse(appXMLTmpl))
	presentationTmpl     = template.Must(template.New("presentation").Funcs(funcs).Parse(presentationXMLTmpl))
	presentationRelsTmpl = template.Must(template.New("presentation rels").Funcs(funcs).Parse(presentationRelsXMLTmpl))
	themeTmpl            = template.Must(template.New("theme").Funcs(funcs).Parse(themeXMLTmpl))
	coreTmpl             = template.Must(template.New("core").Funcs(funcs).Parse(coreXMLTmpl))
)
