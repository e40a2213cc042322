package slide

import (
	"image"
	"math"

	"golang.org/x/image/draw"
)

// scaleImage resamples img to the size of r with the Catmull-Rom kernel.
// All three formats embed this one copy: it is as sharp as the slide can
// show, and a large upload is not carried into the PDF and PPTX at full size.
//
// It gives the picture draw.CatmullRom.Scale gives, but streams the source
// a row at a time. draw's kernel scaler first filters every source row into
// a buffer of 32 bytes per destination column per source row, which for an
// 8000-pixel-tall upload on an 800-pixel-wide picture is 200 MB, more than
// most decoded images; this keeps only the source rows the kernel covers
// for the destination row being made (see scaleBytes).
func scaleImage(img image.Image, r rect) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, int(r.w), int(r.h)))
	sb := img.Bounds()
	s := &scaler{
		src:  img,
		sb:   sb,
		cols: newTaps(dst.Rect.Dx(), sb.Dx()),
		row:  image.NewRGBA(image.Rect(0, 0, sb.Dx(), 1)),
	}
	rows := newTaps(dst.Rect.Dy(), sb.Dy())
	window := 0
	for _, t := range rows {
		window = max(window, len(t.w))
	}
	s.ring = make([][]float32, window)
	for i := range s.ring {
		s.ring[i] = make([]float32, 4*dst.Rect.Dx())
	}
	for y, t := range rows {
		s.fill(t.first + len(t.w))
		s.writeRow(dst.Pix[y*dst.Stride:y*dst.Stride+4*dst.Rect.Dx()], t)
	}
	return dst
}

// scaleBytes bounds what scaleImage allocates, its result aside, to scale
// a source of size src to dst: a source row as RGBA, the ring of filtered
// rows (as many as the kernel spans vertically: 2×Support, widened by the
// scale when shrinking, plus one at each end), and the weights of both
// axes, kept as float32 and computed as float64, with an eighth more for
// the allocator's size classes. It grows with the source's width, not its
// height: about 70 bytes a source column when shrinking.
func scaleBytes(src, dst image.Point) int64 {
	span := func(sn, dn int) int64 {
		return int64(2*math.Ceil(draw.CatmullRom.Support*max(1, float64(sn)/float64(dn)))) + 2
	}
	sx, sy := span(src.X, dst.X), span(src.Y, dst.Y)
	const perTaps = 48 + 8 // a taps value and the float64 slice it is computed in
	row := 4 * int64(src.X)
	ring := sy * (16*int64(dst.X) + 24)
	weights := int64(dst.X)*(sx*12+perTaps) + int64(dst.Y)*(sy*12+perTaps)
	return (row + ring + weights) * 9 / 8
}

// taps are the source pixels, first to first+len(w)-1, that make one
// destination pixel, and their weights, which add up to 1.
type taps struct {
	first int
	w     []float32
}

// newTaps computes the Catmull-Rom taps of each of dn destination pixels
// from sn source pixels along one axis, as draw.CatmullRom does: pixel
// centers aligned, and the kernel widened by the scale when shrinking so
// that every source pixel counts.
func newTaps(dn, sn int) []taps {
	k := draw.CatmullRom
	scale := float64(sn) / float64(dn)
	half, arg := k.Support, 1.0
	if scale > 1 {
		half, arg = half*scale, 1/scale
	}
	out := make([]taps, dn)
	for d := range out {
		center := (float64(d)+0.5)*scale - 0.5
		first := max(0, int(math.Floor(center-half)))
		end := min(sn, int(math.Ceil(center+half)))
		end = max(end, first+1) // at least the nearest pixel
		w := make([]float64, end-first)
		total := 0.0
		for i := range w {
			if t := math.Abs((center - float64(first+i)) * arg); t < k.Support {
				w[i] = k.At(t)
				total += w[i]
			}
		}
		if total == 0 { // cannot happen for Catmull-Rom; keep the nearest pixel
			w[min(len(w)-1, max(0, int(math.Round(center))-first))], total = 1, 1
		}
		out[d] = taps{first: first, w: make([]float32, len(w))}
		for i := range w {
			out[d].w[i] = float32(w[i] / total)
		}
	}
	return out
}

// scaler filters source rows horizontally into a ring of rows of the
// destination's width, each computed once, when the first destination row
// needs it, and overwritten once no later destination row can.
type scaler struct {
	src  image.Image
	sb   image.Rectangle
	cols []taps
	row  *image.RGBA // one source row, premultiplied: draw converts any image type
	ring [][]float32 // filtered source row y is ring[y%len(ring)]
	next int         // the next source row to filter
}

// fill filters the source rows up to, not including, end.
func (s *scaler) fill(end int) {
	for ; s.next < end; s.next++ {
		draw.Draw(s.row, s.row.Rect, s.src, image.Pt(s.sb.Min.X, s.sb.Min.Y+s.next), draw.Src)
		out := s.ring[s.next%len(s.ring)]
		for x, t := range s.cols {
			var r, g, b, a float32
			p := s.row.Pix[4*t.first:]
			for i, w := range t.w {
				r += w * float32(p[4*i])
				g += w * float32(p[4*i+1])
				b += w * float32(p[4*i+2])
				a += w * float32(p[4*i+3])
			}
			out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = r, g, b, a
		}
	}
}

// writeRow makes one destination row from the filtered source rows of t.
// The kernel's negative lobes can overshoot, so each value is clamped to a
// valid premultiplied color: alpha to 0–255, the others to 0–alpha.
func (s *scaler) writeRow(dst []byte, t taps) {
	var acc [4]float32
	for x := 0; x < len(dst); x += 4 {
		acc = [4]float32{}
		for i, w := range t.w {
			in := s.ring[(t.first+i)%len(s.ring)][x : x+4]
			acc[0] += w * in[0]
			acc[1] += w * in[1]
			acc[2] += w * in[2]
			acc[3] += w * in[3]
		}
		a := clamp(acc[3], 255)
		dst[x], dst[x+1], dst[x+2], dst[x+3] = clamp(acc[0], a), clamp(acc[1], a), clamp(acc[2], a), a
	}
}

// clamp rounds v to the nearest integer from 0 to hi.
func clamp(v float32, hi uint8) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= float32(hi):
		return hi
	}
	return uint8(v + 0.5)
}
