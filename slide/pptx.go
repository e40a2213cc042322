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
	slideXML, err := execute(slideTmpl, newSlideData(th, lay))
	if err != nil {
		return nil, fmt.Errorf("slide: encode pptx slide: %w", err)
	}
	themeXML, err := execute(themeTmpl, newThemeData(th))
	if err != nil {
		return nil, fmt.Errorf("slide: encode pptx theme: %w", err)
	}
	coreXML, err := execute(coreTmpl, title)
	if err != nil {
		return nil, fmt.Errorf("slide: encode pptx properties: %w", err)
	}
	// [Content_Types].xml comes first, as readers that stream the zip expect.
	parts := []pptxPart{
		{"[Content_Types].xml", []byte(contentTypesXML)},
		{"_rels/.rels", []byte(rootRelsXML)},
		{"docProps/app.xml", []byte(appXML)},
		{"docProps/core.xml", coreXML},
		{"ppt/presentation.xml", []byte(presentationXML)},
		{"ppt/_rels/presentation.xml.rels", []byte(presentationRelsXML)},
		{"ppt/presProps.xml", []byte(presPropsXML)},
		{"ppt/viewProps.xml", []byte(viewPropsXML)},
		{"ppt/tableStyles.xml", []byte(tableStylesXML)},
		{"ppt/slides/slide1.xml", slideXML},
		{"ppt/slides/_rels/slide1.xml.rels", []byte(slideRelsXML)},
		{"ppt/slideLayouts/slideLayout1.xml", []byte(slideLayoutXML)},
		{"ppt/slideLayouts/_rels/slideLayout1.xml.rels", []byte(slideLayoutRelsXML)},
		{"ppt/slideMasters/slideMaster1.xml", []byte(slideMasterXML)},
		{"ppt/slideMasters/_rels/slideMaster1.xml.rels", []byte(slideMasterRelsXML)},
		{"ppt/theme/theme1.xml", themeXML},
		{"ppt/media/image1.png", picPNG},
	}
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
	Paragraphs []string
	Size       int // hundredths of a point
	LineSpace  int // thousandths of a percent of the font's single spacing
	Color      string
	Typeface   string
	Bold       bool
	SmallCaps  bool
}

type slideData struct {
	Top, Bottom, Accent string
	Picture, Frame      box
	FrameW              int64
	Rule                box
	Title, Body         *textBox
}

func newSlideData(th *theme, lay *layout) slideData {
	half := frameW / 2.0
	p := lay.image
	d := slideData{
		Top: hex(th.bgTop), Bottom: hex(th.bgBottom), Accent: hex(th.accent),
		Picture: toBox(p),
		Frame:   toBox(rect{p.x - half, p.y - half, p.w + frameW, p.h + frameW}),
		FrameW:  toEMU(frameW),
		Rule:    toBox(lay.rule),
	}
	d.Title = newTextBox(4, "Title", lay.title, hex(th.title))
	// The body box reaches the bottom margin: a substitute font set wider
	// than the Go font then has room to spill into before autofit shrinks it.
	body := lay.body
	body.box.h = margin + contentH - body.box.y
	d.Body = newTextBox(5, "Description", body, hex(th.text))
	return d
}

// newTextBox describes b for the PPTX, or returns nil for an empty block.
func newTextBox(id int, name string, b textBlock, color string) *textBox {
	paras := b.paragraphs()
	if len(paras) == 0 {
		return nil
	}
	return &textBox{
		ID: id, Name: name, Box: toBox(b.box), Paragraphs: paras,
		Size: int(math.Round(b.size * pt * 100)),
		// PowerPoint's single spacing is about 1.2 times the size.
		LineSpace: int(math.Round(b.leading / 1.2 * 100000)),
		Color:     color, Typeface: b.font.office, Bold: b.font.bold, SmallCaps: b.font.smallCaps,
	}
}

type themeData struct {
	Dark, Light, Dark2, Light2, Accent, Accent2, Major, Minor string
}

// newThemeData gives the theme the style's colors and office fonts, so text
// a user adds to the slide in PowerPoint matches it.
func newThemeData(th *theme) themeData {
	return themeData{
		Dark: "000000", Light: "FFFFFF", Dark2: hex(th.bgBottom), Light2: hex(th.text),
		Accent: hex(th.accent), Accent2: hex(th.title),
		Major: th.titleFont.office, Minor: th.bodyFont.office,
	}
}

var funcs = template.FuncMap{"esc": escape}

var (
	slideTmpl = template.Must(template.New("slide").Funcs(funcs).Parse(slideXMLTmpl))
	themeTmpl = template.Must(template.New("theme").Funcs(funcs).Parse(themeXMLTmpl))
	coreTmpl  = template.Must(template.New("core").Funcs(funcs).Parse(coreXMLTmpl))
)
