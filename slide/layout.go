package slide

import (
	"fmt"
	"image"
	"math"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/math/fixed"
)

// The slide's geometry in PNG pixels. A 16:9 slide with wide margins; the
// image takes a fixed column so every slide of a deck lines up.
const (
	slideW, slideH = 1920, 1080
	margin         = 120 // on all four sides
	imageColW      = 800
	gutter         = 96 // between the image column and the text column
	textColW       = slideW - 2*margin - imageColW - gutter
	contentH       = slideH - 2*margin
	frameW         = 8 // accent frame around the image, outside it

	ruleW, ruleH         = 140, 10
	ruleAbove, ruleBelow = 36, 44
)

// fit says how a block of text may shrink: from max to min size in steps,
// and at most maxLines lines (0 for as many as the height allows).
type fit struct {
	max, min, step float64 // font size in px
	leading        float64 // line height as a multiple of the size
	maxLines       int
}

var (
	titleFit = fit{max: 84, min: 52, step: 4, leading: 1.12, maxLines: 3}
	bodyFit  = fit{max: 40, min: 20, step: 2, leading: 1.4}
)

type rect struct{ x, y, w, h float64 }

// textBlock is wrapped text placed on the slide.
type textBlock struct {
	font       *goFont
	face       font.Face // for the PNG; not safe for concurrent use
	size       float64   // px
	leading    float64   // line height / size
	lineHeight float64   // px
	baseline   float64   // first baseline, from the top of the box
	lines      []string
	shown      string // what the lines show, paragraphs joined by \n (for the PPTX)
	box        rect
}

// layout is where everything goes, in PNG pixels.
type layout struct {
	image       rect // the picture itself; the frame lies outside it
	title, body textBlock
	rule        rect
}

func newLayout(th *theme, imgSize image.Point, title, desc string) (*layout, error) {
	imageX, textX := float64(slideW-margin-imageColW), float64(margin)
	if th.imageLeft {
		imageX, textX = margin, margin+imageColW+gutter
	}
	lay := &layout{image: fitImage(imgSize, rect{imageX, margin, imageColW, contentH})}

	var err error
	if lay.title, err = fitBlock(th.titleFont, title, textColW, contentH, titleFit); err != nil {
		return nil, err
	}
	above := float64(ruleAbove)
	if title == "" {
		above = 0 // the rule then heads the description
	}
	ruleBlock := above + ruleH + ruleBelow
	bodyMax := contentH - lay.title.box.h - ruleBlock
	if lay.body, err = fitBlock(th.bodyFont, desc, textColW, bodyMax, bodyFit); err != nil {
		return nil, err
	}

	// Center the text vertically beside the image: short texts then sit
	// where the eye expects them instead of hanging from the top margin.
	y := margin + (contentH-lay.title.box.h-ruleBlock-lay.body.box.h)/2
	lay.title.box.x, lay.title.box.y = textX, y
	y += lay.title.box.h + above
	lay.rule = rect{textX, y, ruleW, ruleH}
	lay.body.box.x, lay.body.box.y = textX, y+ruleH+ruleBelow
	return lay, nil
}

// fitImage scales size to fill box inside the frame, aspect preserved,
// centered, on whole pixels so the PNG needs no resampling at the edges.
// Small images are enlarged: a 64 px image lost on a slide looks broken.
func fitImage(size image.Point, box rect) rect {
	bw, bh := box.w-2*frameW, box.h-2*frameW
	scale := math.Min(bw/float64(size.X), bh/float64(size.Y))
	w := math.Max(1, math.Round(float64(size.X)*scale))
	h := math.Max(1, math.Round(float64(size.Y)*scale))
	return rect{
		x: math.Round(box.x + (box.w-w)/2),
		y: math.Round(box.y + (box.h-h)/2),
		w: w, h: h,
	}
}

// fitBlock wraps text into a column maxW wide and at most maxH high, trying
// sizes from large to small. At the smallest size what does not fit is cut
// and the last line ends with an ellipsis.
func fitBlock(f *goFont, text string, maxW, maxH float64, ft fit) (textBlock, error) {
	if text == "" {
		return textBlock{font: f}, nil
	}
	for size := ft.max; ; size -= ft.step {
		m, err := newMeasurer(f.sfnt, size)
		if err != nil {
			return textBlock{}, fmt.Errorf("slide: font %s at %gpx: %w", f.name, size, err)
		}
		lineHeight := size * ft.leading
		limit := int(maxH / lineHeight)
		if ft.maxLines > 0 {
			limit = min(limit, ft.maxLines)
		}
		spans := wrap(m, text, fixed.Int26_6(maxW*64))
		if len(spans) <= limit || size-ft.step < ft.min {
			return newBlock(f, m, text, spans, limit, size, ft.leading, maxW), nil
		}
	}
}

// newBlock keeps the first limit lines of spans, with an ellipsis when
// some were dropped.
func newBlock(f *goFont, m *measurer, text string, spans []span, limit int, size, leading, maxW float64) textBlock {
	b := textBlock{font: f, face: m.face, size: size, leading: leading, lineHeight: size * leading, shown: text}
	cut := ""
	if len(spans) > limit {
		spans = spans[:limit]
		for len(spans) > 0 && spans[len(spans)-1].start == spans[len(spans)-1].end {
			spans = spans[:len(spans)-1] // do not end on a blank line
		}
		if len(spans) == 0 {
			return textBlock{font: f}
		}
		last := spans[len(spans)-1]
		cut = shorten(m, text, last, fixed.Int26_6(maxW*64))
		b.shown = text[:last.start] + cut
	}
	for _, s := range spans {
		b.lines = append(b.lines, text[s.start:s.end])
	}
	if cut != "" {
		b.lines[len(b.lines)-1] = cut
	}
	met := m.face.Metrics()
	ascent, descent := float64(met.Ascent)/64, float64(met.Descent)/64
	b.baseline = (b.lineHeight-ascent-descent)/2 + ascent
	b.box = rect{w: maxW, h: float64(len(b.lines)) * b.lineHeight}
	return b
}

// paragraphs are the shown text's paragraphs.
func (b textBlock) paragraphs() []string {
	if b.shown == "" {
		return nil
	}
	return strings.Split(b.shown, "\n")
}
