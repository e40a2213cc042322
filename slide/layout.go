package slide

import (
	"image"
	"math"
	"strings"
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
// and at most maxLines lines (0 for as many as the height allows) before
// it takes the smallest size and continues on further slides.
type fit struct {
	max, min, step float64 // font size in px
	leading        float64 // line height as a multiple of the size
	maxLines       int
}

// The body never goes below 28 px (14 pt): text that does not fit at that
// size continues on another slide instead of shrinking out of reach.
var (
	titleFit = fit{max: 84, min: 52, step: 4, leading: 1.12, maxLines: 3}
	bodyFit  = fit{max: 40, min: 28, step: 2, leading: 1.4}
)

type rect struct{ x, y, w, h float64 }

// textBlock is a block of set text: a title or a body.
type textBlock struct {
	font       *goFont
	size       float64 // px
	leading    float64 // line height / size
	lineHeight float64 // px
	baseline   float64 // from the top of a line
	lines      []shapedLine
}

// placed is a line of a block at its place on a page.
type placed struct {
	line *shapedLine
	y    float64 // top of the line box
}

// page is one slide of the deck.
type page struct {
	title, body []placed
	rule        *rect
}

// layout is where everything goes, in PNG pixels, on each slide.
type layout struct {
	image       rect // the picture itself; the frame lies outside it
	textX       float64
	title, body textBlock
	pages       []page
}

func newLayout(th *theme, ts *typesetter, imgSize image.Point, title, desc string) *layout {
	imageX, textX := float64(slideW-margin-imageColW), float64(margin)
	if th.imageLeft {
		imageX, textX = margin, margin+imageColW+gutter
	}
	lay := &layout{image: fitImage(imgSize, rect{imageX, margin, imageColW, contentH}), textX: textX}
	lay.title = fitBlock(ts, th.titleFont, title, textColW, contentH, titleFit)
	above := float64(ruleAbove)
	if title == "" {
		above = 0 // the rule then heads the description
	}
	ruleBlock := above + ruleH + ruleBelow
	titleH := float64(len(lay.title.lines)) * lay.title.lineHeight
	lay.body = fitBlock(ts, th.bodyFont, desc, textColW, contentH-titleH-ruleBlock, bodyFit)
	lay.paginate(above)
	return lay
}

// paginate places the title, the rule and the body's lines on as many
// slides as they need: nothing is cut. A deck that fits one slide is
// centered vertically beside the image, where the eye expects a short
// text; the slides of a longer one are filled from the top, so the text
// reads on from one to the next.
func (lay *layout) paginate(above float64) {
	p, y := page{}, 0.0
	next := func() {
		lay.pages = append(lay.pages, p)
		p, y = page{}, 0
	}
	for i := range lay.title.lines {
		if y+lay.title.lineHeight > contentH && y > 0 {
			next()
		}
		p.title = append(p.title, placed{&lay.title.lines[i], y})
		y += lay.title.lineHeight
	}
	if y+above+ruleH+ruleBelow > contentH {
		next()
		above = 0
	}
	p.rule = &rect{lay.textX, y + above, ruleW, ruleH}
	y += above + ruleH + ruleBelow
	for i := range lay.body.lines {
		l := &lay.body.lines[i]
		if y+lay.body.lineHeight > contentH+0.01 && y > 0 {
			next()
		}
		if y == 0 && len(l.runs) == 0 && l.text == "" {
			continue // a page does not start with a blank line
		}
		p.body = append(p.body, placed{l, y})
		y += lay.body.lineHeight
	}
	lay.pages = append(lay.pages, p)

	shift := float64(margin)
	if len(lay.pages) == 1 {
		shift += (contentH - y) / 2
	}
	for i := range lay.pages {
		pg := &lay.pages[i]
		for j := range pg.title {
			pg.title[j].y += shift
		}
		for j := range pg.body {
			pg.body[j].y += shift
		}
		if pg.rule != nil {
			pg.rule.y += shift
		}
		shift = margin
	}
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

// fitBlock sets text in a column maxW wide, trying sizes from large to
// small until it fits maxH (and maxLines); at the smallest size it keeps
// every line, and paginate carries what does not fit to further slides.
func fitBlock(ts *typesetter, f *goFont, text string, maxW, maxH float64, ft fit) textBlock {
	b := textBlock{font: f, leading: ft.leading}
	if text == "" {
		return b
	}
	fm := fontmap{ts: ts, primary: f.sfnt, weight: f.weight()}
	for size := ft.max; ; size -= ft.step {
		b.size, b.lineHeight = size, size*ft.leading
		b.lines = ts.setText(text, fm, size, maxW)
		limit := int(maxH / b.lineHeight)
		if ft.maxLines > 0 {
			limit = min(limit, ft.maxLines)
		}
		if len(b.lines) <= limit || size-ft.step < ft.min {
			break
		}
	}
	// The primary font's ascent and descent center the line in its box.
	ext, _ := ts.face(f.sfnt).FontHExtents()
	scale := b.size / float64(f.sfnt.Upem())
	ascent, descent := float64(ext.Ascender)*scale, -float64(ext.Descender)*scale
	b.baseline = (b.lineHeight-ascent-descent)/2 + ascent
	return b
}

// paragraphs are the paragraphs of lines, as the PPTX shows them: a
// paragraph's lines joined, each paragraph's end a break.
func paragraphs(lines []placed) []string {
	var out []string
	var cur strings.Builder
	for i, pl := range lines {
		cur.WriteString(pl.line.text)
		if pl.line.paraEnd || i == len(lines)-1 {
			out = append(out, strings.TrimRight(cur.String(), " "))
			cur.Reset()
		}
	}
	return out
}
