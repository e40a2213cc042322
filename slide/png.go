package slide

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"runtime"
	"sync"

	"golang.org/x/image/draw"
)

// encodePNG favours speed: the slide is mostly flat color and text, which
// compress well even at the fastest level, and a render should not be
// dominated by deflate.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: encoderBuffers}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// canvases are the 1920×1080 RGBA images renderPNG draws on, 8 MiB each,
// reused from one render to the next rather than left to the garbage
// collector: a service rendering slide after slide would otherwise
// allocate one per slide. It keeps as many as there are CPUs to render
// at once (more renders at once than that take new ones and let them go).
// A sync.Pool would not do: it drops what it holds at every other
// collection, and a render's own 15 MiB of garbage runs one before the
// next render. paintGradient paints every pixel, so a reused canvas needs
// no clearing.
var canvases = make(chan *image.RGBA, runtime.GOMAXPROCS(0))

func getCanvas() *image.RGBA {
	select {
	case c := <-canvases:
		return c
	default:
		return image.NewRGBA(image.Rect(0, 0, slideW, slideH))
	}
}

func putCanvas(c *image.RGBA) {
	select {
	case canvases <- c:
	default:
	}
}

// encoderBuffers reuses the PNG encoder's buffers (its zlib writer, its
// rows) across encodes.
var encoderBuffers = new(pngBuffers)

type pngBuffers struct{ p sync.Pool }

func (b *pngBuffers) Get() *png.EncoderBuffer {
	buf, _ := b.p.Get().(*png.EncoderBuffer)
	return buf
}

func (b *pngBuffers) Put(buf *png.EncoderBuffer) { b.p.Put(buf) }

// renderPNG draws page n of the deck.
func renderPNG(th *theme, lay *layout, n int, pic *image.RGBA) ([]byte, error) {
	dst := getCanvas()
	defer putCanvas(dst)
	drawPage(dst, th, lay, n, pic)
	out, err := encodePNG(dst)
	if err != nil {
		return nil, fmt.Errorf("slide: encode png: %w", err)
	}
	return out, nil
}

// drawPage paints page n of the deck on dst, every pixel of it.
func drawPage(dst *image.RGBA, th *theme, lay *layout, n int, pic *image.RGBA) {
	paintGradient(dst, th.bgTop, th.bgBottom)

	if lay.band != nil {
		fill(dst, pixels(*lay.band), th.band)
	}
	pg := lay.pages[n]
	if pg.picture {
		r := pixels(lay.image)
		outline(dst, r, frameW, th.accent)
		draw.Draw(dst, r, pic, image.Point{}, draw.Over)
	}
	if pg.rule != nil {
		fill(dst, pixels(*pg.rule), th.accent)
	}
	p := newPainter(dst, lay.ts)
	drawText(p, lay.title, pg.title, th.title)
	drawText(p, lay.body, pg.body, th.text)
}

// paintGradient fills dst top to bottom from top to bottom color. Each row
// is one color, so it is computed once and copied across.
func paintGradient(dst *image.RGBA, top, bottom color.RGBA) {
	b := dst.Bounds()
	row := make([]byte, 4*b.Dx())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		c := lerp(top, bottom, float64(y-b.Min.Y)/float64(b.Dy()-1))
		for x := 0; x < len(row); x += 4 {
			row[x], row[x+1], row[x+2], row[x+3] = c.R, c.G, c.B, c.A
		}
		copy(dst.Pix[dst.PixOffset(b.Min.X, y):], row)
	}
}

func fill(dst *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(dst, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// outline draws a border w wide around r, outside it, leaving r itself
// alone so a transparent image shows the background, not the accent.
func outline(dst *image.RGBA, r image.Rectangle, w int, c color.RGBA) {
	o := r.Inset(-w)
	fill(dst, image.Rect(o.Min.X, o.Min.Y, o.Max.X, r.Min.Y), c)
	fill(dst, image.Rect(o.Min.X, r.Max.Y, o.Max.X, o.Max.Y), c)
	fill(dst, image.Rect(o.Min.X, r.Min.Y, r.Min.X, r.Max.Y), c)
	fill(dst, image.Rect(r.Max.X, r.Min.Y, o.Max.X, r.Max.Y), c)
}

func pixels(r rect) image.Rectangle {
	return image.Rect(int(r.x), int(r.y), int(r.x+r.w), int(r.y+r.h))
}

func drawText(p *painter, b textBlock, lines []placed, c color.RGBA) {
	for _, pl := range lines {
		p.line(pl.line, pl.x, pl.y+b.baseline, c)
	}
}
