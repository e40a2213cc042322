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
	x, w       float64 // its column
	center     bool    // lines centered in the column
}

// placed is a line of a block at its place on a page.
type placed struct {
	line *shapedLine
	x, y float64 // left end of the line, top of the line box
}

// page is one slide of the deck.
type page struct {
	title, body []placed
	rule        *rect
}

// layout is where everything goes, in PNG pixels, on each slide.
type layout struct {
	image       rect  // the picture itself; the frame lies outside it
	band        *rect // the title's band across the top, on every slide
	title, body textBlock
	bottom      float64 // of the text's region
	pages       []page
}

// geometry is what a style's layout fixes before the text is set.
type geometry struct {
	imageBox       rect    // the box the picture is fitted into
	titleX, titleW float64 // the title's column
	bodyX, bodyW   float64 // the description's column
	top, bottom    float64 // the text's region
	titleFit       fit
	center         bool // lines centered in their columns
}

// The three layouts. split: image and text side by side, the text
// centered vertically beside the image. band: the title in a band across
// the top of every slide, the description and the image below it.
// centered: the image above, title and description centered under it,
// with wide margins all round.
func newGeometry(th *theme) geometry {
	imageX, textX := float64(slideW-margin-imageColW), float64(margin)
	if th.imageLeft {
		imageX, textX = margin, margin+imageColW+gutter
	}
	switch th.layout {
	case "band":
		return geometry{
			imageBox: rect{imageX, 0, imageColW, 0}, // its top follows the band
			titleX:   margin, titleW: slideW - 2*margin,
			bodyX: textX, bodyW: textColW,
			bottom:   slideH - margin,
			titleFit: fit{max: 72, min: 48, step: 4, leading: 1.12, maxLines: 2},
		}
	case "centered":
		const imageTop, imageH, gap, side = 72, 360, 56, 240
		return geometry{
			imageBox: rect{(slideW - 2*imageH) / 2, imageTop, 2 * imageH, imageH},
			titleX:   side, titleW: slideW - 2*side,
			bodyX: side + 120, bodyW: slideW - 2*side - 240,
			top: imageTop + imageH + gap, bottom: slideH - imageTop,
			titleFit: fit{max: 64, min: 48, step: 4, leading: 1.12, maxLines: 2},
			center:   true,
		}
	}
	return geometry{
		imageBox: rect{imageX, margin, imageColW, contentH},
		titleX:   textX, titleW: textColW, bodyX: textX, bodyW: textColW,
		top: margin, bottom: slideH - margin,
		titleFit: titleFit,
	}
}

func newLayout(th *theme, ts *typesetter, imgSize image.Point, title, desc string) *layout {
	g := newGeometry(th)
	lay := &layout{}
	lay.title = fitBlock(ts, th.titleFont, title, g.titleW, g.bottom-g.top, g.titleFit)
	lay.title.x, lay.title.w, lay.title.center = g.titleX, g.titleW, g.center
	titleH := float64(len(lay.title.lines)) * lay.title.lineHeight
	above := float64(ruleAbove)
	if title == "" {
		above = 0 // the rule then heads the description
	}
	ruleBlock := above + ruleH + ruleBelow
	if th.layout == "band" {
		const pad = 56
		h := max(titleH, lay.title.lineHeight) + 2*pad
		lay.band = &rect{0, 0, slideW, h}
		g.top = h + ruleH + 72
		g.imageBox.y, g.imageBox.h = g.top, g.bottom-g.top
		ruleBlock, titleH = 0, 0 // the title is in the band; the rule is its edge
	}
	lay.image, lay.bottom = fitImage(imgSize, g.imageBox), g.bottom
	lay.body = fitBlock(ts, th.bodyFont, desc, g.bodyW, g.bottom-g.top-titleH-ruleBlock, bodyFit)
	lay.body.x, lay.body.w, lay.body.center = g.bodyX, g.bodyW, g.center
	if lay.band != nil {
		lay.paginateBand()
	} else {
		lay.paginate(g, above)
	}
	return lay
}

// at places line l of b at y.
func (b *textBlock) at(l *shapedLine, y float64) placed {
	x := b.x
	switch {
	case b.center:
		x += (b.w - l.width) / 2
	case l.rtl:
		x += b.w - l.width
	}
	return placed{l, x, y}
}

// paginate places the title, the rule and the body's lines on as many
// slides as they need: nothing is cut. A deck that fits one slide is
// centered vertically in the text's region, where the eye expects a short
// text; the slides of a longer one are filled from the top, so the text
// reads on from one to the next.
func (lay *layout) paginate(g geometry, above float64) {
	height := g.bottom - g.top
	p, y := page{}, 0.0
	next := func() {
		lay.pages = append(lay.pages, p)
		p, y = page{}, 0
	}
	for i := range lay.title.lines {
		if y+lay.title.lineHeight > height && y > 0 {
			next()
		}
		p.title = append(p.title, lay.title.at(&lay.title.lines[i], y))
		y += lay.title.lineHeight
	}
	if y+above+ruleH+ruleBelow > height {
		next()
		above = 0
	}
	ruleX := g.titleX
	if g.center {
		ruleX = g.titleX + (g.titleW-ruleW)/2
	}
	p.rule = &rect{ruleX, y + above, ruleW, ruleH}
	y += above + ruleH + ruleBelow
	lay.placeBody(&p, &y, height, next)
	lay.pages = append(lay.pages, p)

	shift := g.top
	if len(lay.pages) == 1 {
		shift += (height - y) / 2
	}
	for i := range lay.pages {
		lay.pages[i].shift(shift)
		shift = g.top
	}
}

// paginateBand places the body's lines below the band on as many slides
// as they need, each headed by the band and the title in it.
func (lay *layout) paginateBand() {
	top := lay.band.h + ruleH + 72
	height := slideH - margin - top
	var title []placed
	y := (lay.band.h - float64(len(lay.title.lines))*lay.title.lineHeight) / 2
	for i := range lay.title.lines {
		title = append(title, lay.title.at(&lay.title.lines[i], y))
		y += lay.title.lineHeight
	}
	p, y := page{}, 0.0
	next := func() {
		lay.pages = append(lay.pages, p)
		p, y = page{}, 0
	}
	lay.placeBody(&p, &y, height, next)
	lay.pages = append(lay.pages, p)
	for i := range lay.pages {
		pg := &lay.pages[i]
		pg.shift(top)
		pg.title = title
		pg.rule = &rect{0, lay.band.h, slideW, ruleH}
	}
}

// placeBody adds the body's lines to p from *y down, starting a new page
// with next when one does not fit the height.
func (lay *layout) placeBody(p *page, y *float64, height float64, next func()) {
	for i := range lay.body.lines {
		l := &lay.body.lines[i]
		if *y+lay.body.lineHeight > height+0.01 && *y > 0 {
			next()
		}
		if *y == 0 && len(l.runs) == 0 && l.text == "" {
			continue // a page does not start with a blank line
		}
		p.body = append(p.body, lay.body.at(l, *y))
		*y += lay.body.lineHeight
	}
}

// shift moves everything on the page down by dy.
func (pg *page) shift(dy float64) {
	for j := range pg.title {
		pg.title[j].y += dy
	}
	for j := range pg.body {
		pg.body[j].y += dy
	}
	if pg.rule != nil {
		pg.rule.y += dy
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
