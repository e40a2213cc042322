package slide

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"

	"github.com/go-text/typesetting/font"
	ot "github.com/go-text/typesetting/font/opentype"
	"github.com/go-text/typesetting/shaping"
	"golang.org/x/image/draw"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

func px(v fixed.Int26_6) float64 { return float64(v) / 64 }

// eachGlyph calls fn with every glyph of l, left to right, and the point
// where its origin goes when the line starts at x on baseline y.
func eachGlyph(l *shapedLine, x, y float64, fn func(face *font.Face, g *shaping.Glyph, size, gx, gy float64)) {
	for _, run := range l.runs {
		size := px(run.Size)
		for i := range run.Glyphs {
			g := &run.Glyphs[i]
			fn(run.Face, g, size, x+px(g.XOffset), y-px(g.YOffset))
			x += px(g.Advance)
		}
	}
}

// glyphBox is where a bitmap glyph (a color emoji) goes: the box of its
// shaped extents, or a square on the baseline when the font gives none.
func glyphBox(g *shaping.Glyph, size, x, y float64) rect {
	w, h := px(g.Width), -px(g.Height)
	if w <= 0 || h <= 0 {
		return rect{x, y - 0.9*size, size, size}
	}
	return rect{x + px(g.XBearing), y - px(g.YBearing), w, h}
}

// painter draws glyphs on the PNG canvas: outlines through a rasterizer,
// bitmaps (color emoji) decoded once per render and scaled into place.
type painter struct {
	dst     *image.RGBA
	ts      *typesetter
	ras     vector.Rasterizer
	bitmaps map[bitmapKey]image.Image
}

type bitmapKey struct {
	face *font.Face
	gid  font.GID
}

func newPainter(dst *image.RGBA, ts *typesetter) *painter {
	return &painter{dst: dst, ts: ts, bitmaps: make(map[bitmapKey]image.Image)}
}

func (p *painter) line(l *shapedLine, x, y float64, c color.RGBA) {
	src := image.NewUniform(c)
	eachGlyph(l, x, y, func(face *font.Face, g *shaping.Glyph, size, gx, gy float64) {
		switch d := p.ts.glyph(face, g.GlyphID).(type) {
		case font.GlyphOutline:
			p.outline(d, size/float64(face.Upem()), gx, gy, src)
		case font.GlyphBitmap:
			p.bitmap(face, g, d, glyphBox(g, size, gx, gy))
		}
	})
}

// outline fills the glyph's contours, in font units scaled by scale with y
// up, with the origin at (x, y).
func (p *painter) outline(o font.GlyphOutline, scale, x, y float64, src image.Image) {
	if len(o.Segments) == 0 {
		return
	}
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, s := range o.Segments {
		for _, a := range s.ArgsSlice() {
			ax, ay := x+float64(a.X)*scale, y-float64(a.Y)*scale
			minX, maxX = math.Min(minX, ax), math.Max(maxX, ax)
			minY, maxY = math.Min(minY, ay), math.Max(maxY, ay)
		}
	}
	r := image.Rect(int(math.Floor(minX)), int(math.Floor(minY)), int(math.Ceil(maxX))+1, int(math.Ceil(maxY))+1)
	if r.Empty() || !r.Overlaps(p.dst.Rect) || r.Dx() > slideW || r.Dy() > slideH {
		return
	}
	ox, oy := float64(r.Min.X), float64(r.Min.Y)
	pt := func(a font.SegmentPoint) (float32, float32) {
		return float32(x + float64(a.X)*scale - ox), float32(y - float64(a.Y)*scale - oy)
	}
	p.ras.Reset(r.Dx(), r.Dy())
	for _, s := range o.Segments {
		switch s.Op {
		case ot.SegmentOpMoveTo:
			p.ras.MoveTo(pt(s.Args[0]))
		case ot.SegmentOpLineTo:
			p.ras.LineTo(pt(s.Args[0]))
		case ot.SegmentOpQuadTo:
			ax, ay := pt(s.Args[0])
			bx, by := pt(s.Args[1])
			p.ras.QuadTo(ax, ay, bx, by)
		case ot.SegmentOpCubeTo:
			ax, ay := pt(s.Args[0])
			bx, by := pt(s.Args[1])
			cx, cy := pt(s.Args[2])
			p.ras.CubeTo(ax, ay, bx, by, cx, cy)
		}
	}
	p.ras.ClosePath()
	p.ras.Draw(p.dst, r, src, image.Point{})
}

func (p *painter) bitmap(face *font.Face, g *shaping.Glyph, d font.GlyphBitmap, box rect) {
	key := bitmapKey{face, g.GlyphID}
	img, ok := p.bitmaps[key]
	if !ok {
		img = decodeBitmap(d)
		p.bitmaps[key] = img
	}
	if img == nil {
		return
	}
	r := image.Rect(int(math.Round(box.x)), int(math.Round(box.y)), int(math.Round(box.x+box.w)), int(math.Round(box.y+box.h)))
	draw.CatmullRom.Scale(p.dst, r, img, img.Bounds(), draw.Over, nil)
}

// decodeBitmap decodes a PNG bitmap glyph (Noto Color Emoji's CBDT); other
// formats are not drawn.
func decodeBitmap(d font.GlyphBitmap) image.Image {
	if d.Format != font.PNG {
		return nil
	}
	img, err := png.Decode(bytes.NewReader(d.Data))
	if err != nil {
		return nil
	}
	return img
}
