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
	col  float64 // left edge of its column
}

// page is one slide of the deck. Only the first shows the picture: the
// slides that continue a long description give the picture's room to a
// second column of text.
type page struct {
	title, body []placed
	rule        *rect
	picture     bool
}

// layout is where everything goes, in PNG pixels, on each slide.
type layout struct {
	image       rect  // the picture itself; the frame lies outside it
	band        *rect // the title's band across the top, on every slide
	title, body textBlock
	bottom      float64 // of the text's region
	pages       []page
	overflow    bool // the title alone does not fit a slide
	ts          *typesetter
}

// column is a region of a slide the description flows through.
type column struct{ x, top, bottom float64 }

// geometry is what a style's layout fixes before the text is set.
type geometry struct {
	imageBox       rect     // the box the picture is fitted into
	titleX, titleW float64  // the title's column
	bodyX, bodyW   float64  // the description's column
	top, bottom    float64  // the text's region
	more           []column // the columns of the slides after the first
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
	// Two columns where the first slide has the picture and the text.
	twoCols := func(top float64) []column {
		return []column{{margin, top, slideH - margin}, {margin + imageColW + gutter, top, slideH - margin}}
	}
	switch th.layout {
	case "band":
		return geometry{
			imageBox: rect{imageX, 0, imageColW, 0}, // its top follows the band
			titleX:   margin, titleW: slideW - 2*margin,
			bodyX: textX, bodyW: textColW,
			bottom:   slideH - margin,
			titleFit: fit{max: 72, min: 48, step: 4, leading: 1.12, maxLines: 2},
			more:     twoCols(0), // their top follows the band
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
			more:     []column{{side + 120, imageTop, slideH - imageTop}},
		}
	}
	return geometry{
		imageBox: rect{imageX, margin, imageColW, contentH},
		titleX:   textX, titleW: textColW, bodyX: textX, bodyW: textColW,
		top: margin, bottom: slideH - margin,
		more:     twoCols(margin),
		titleFit: titleFit,
	}
}

func newLayout(th *theme, ts *typesetter, imgSize image.Point, title, desc string) *layout {
	g := newGeometry(th)
	lay := &layout{ts: ts}
	// The title leaves room for the rule under it.
	lay.title = fitBlock(ts, th.titleFont, title, g.titleW, g.bottom-g.top-ruleAbove-ruleH-ruleBelow, g.titleFit)
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
		for i := range g.more {
			g.more[i].top = g.top
		}
		ruleBlock, titleH = 0, 0 // the title is in the band; the rule is its edge
	}
	lay.image, lay.bottom = fitImage(imgSize, g.imageBox), g.bottom
	lay.body = fitBlock(ts, th.bodyFont, desc, g.bodyW, g.bottom-g.top-titleH-ruleBlock, bodyFit)
	lay.body.x, lay.body.w, lay.body.center = g.bodyX, g.bodyW, g.center
	lay.paginate(g, above)
	return lay
}

// at places line l of b in the column at x, at y.
func (b *textBlock) at(l *shapedLine, x, y float64) placed {
	pl := placed{l, x, y, x}
	switch {
	case b.center:
		pl.x += (b.w - l.width) / 2
	case l.rtl:
		pl.x += b.w - l.width
	}
	return pl
}

// paginate places the title, the rule and the description's lines on as
// many slides as they need: nothing is cut. The first slide has the title
// (in the band layout every slide has it in its band), the rule and the
// first of the description below them; the description flows on through
// the columns of further slides. A deck that fits one slide is centered
// vertically in the text's region, where the eye expects a short text.
func (lay *layout) paginate(g geometry, above float64) {
	var first page
	first.picture = true
	y := g.top
	if lay.band != nil {
		ty := (lay.band.h - float64(len(lay.title.lines))*lay.title.lineHeight) / 2
		for i := range lay.title.lines {
			first.title = append(first.title, lay.title.at(&lay.title.lines[i], g.titleX, ty))
			ty += lay.title.lineHeight
		}
		first.rule = &rect{0, lay.band.h, slideW, ruleH}
	} else {
		for i := range lay.title.lines {
			first.title = append(first.title, lay.title.at(&lay.title.lines[i], g.titleX, y))
			y += lay.title.lineHeight
		}
		ruleX := g.titleX
		if g.center {
			ruleX = g.titleX + (g.titleW-ruleW)/2
		}
		first.rule = &rect{ruleX, y + above, ruleW, ruleH}
		y += above + ruleH + ruleBelow
		lay.overflow = y > g.bottom+0.01
	}

	cols, ci, p := []column{{g.bodyX, y, g.bottom}}, 0, first
	onFirst := true // the first slide's column may have no room at all
	lh := lay.body.lineHeight
	for i := range lay.body.lines {
		l := &lay.body.lines[i]
		for y+lh > cols[ci].bottom+0.01 && (y > cols[ci].top || onFirst) {
			onFirst = false
			if ci++; ci == len(cols) {
				lay.pages = append(lay.pages, p)
				p, cols, ci = page{}, g.more, 0
				if lay.band != nil {
					p.title, p.rule = first.title, first.rule
				}
			}
			y = cols[ci].top
		}
		if y == cols[ci].top && len(l.runs) == 0 && l.text == "" {
			continue // a column does not start with a blank line
		}
		p.body = append(p.body, lay.body.at(l, cols[ci].x, y))
		y += lh
	}
	lay.pages = append(lay.pages, p)
	if len(lay.pages) == 1 && lay.band == nil {
		lay.pages[0].shift((g.bottom - y) / 2)
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
	paras := ts.shapeText(text, fm, ft.max)
	for size := ft.max; ; size -= ft.step {
		b.size, b.lineHeight = size, size*ft.leading
		b.lines = ts.wrapText(paras, size, maxW)
		h := float64(len(b.lines)) * b.lineHeight
		limit := int(maxH / b.lineHeight)
		if ft.maxLines > 0 {
			limit = min(limit, ft.maxLines)
		}
		switch {
		case len(b.lines) <= limit:
		case size-ft.step >= ft.min:
			continue
		// Below its smallest size a block shrinks on only while it is
		// taller than the region (a long title), never below the body's
		// smallest size.
		case h > maxH && size-ft.step >= bodyFit.min:
			continue
		}
		break
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
