package aisim

import (
	"encoding/binary"
	"fmt"
	"image"
)

// imageHeader is what an image's header says about decoding it, read
// before any pixel is: a service refuses an image too costly to decode, and
// sets memory aside for the others, from this alone.
type imageHeader struct {
	format        string // "png" or "jpeg"
	width, height int
	kind          string // how the pixels are stored, for reasons given to users: "16-bit PNG"
	decodedBytes  int64  // an upper bound of what the decoder allocates
}

// decoderBytes is what a decoder allocates besides its pixels, whatever
// the image's size: its state, tables and the inflate window.
const decoderBytes = 256 << 10

// readHeader works out what decoding the image costs from its config and
// its first bytes, head, which hold everything image.DecodeConfig read:
// for a PNG the IHDR chunk, for a JPEG the frame header (SOF).
func readHeader(format string, cfg image.Config, head []byte) imageHeader {
	h := imageHeader{format: format, width: cfg.Width, height: cfg.Height}
	if format == "png" {
		h.kind, h.decodedBytes = pngCost(cfg, head)
	} else {
		h.kind, h.decodedBytes = jpegCost(cfg, head)
	}
	h.decodedBytes += decoderBytes
	return h
}

// pngCost is what image/png allocates for the image whose IHDR chunk
// starts head (after the 8-byte signature and the chunk's length and
// type): the image, two rows of raw data, and for an interlaced image a
// second image's worth for the seven passes, decoded apart and then merged.
//
// Pixels take 1 byte when paletted, else 4 (8 bits a channel) or 8 (16
// bits), even when gray: a tRNS chunk, which may come after the header,
// turns gray into NRGBA or NRGBA64, so a gray image is charged as if it had
// one.
func pngCost(cfg image.Config, head []byte) (string, int64) {
	const ihdr = 8 + 8 // signature, chunk length and type
	if len(head) < ihdr+13 {
		return "PNG", pixels(cfg) * 16 // cannot happen after DecodeConfig: the most it could be
	}
	depth, colorType, interlaced := int64(head[ihdr+8]), head[ihdr+9], head[ihdr+12] == 1
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType]
	perPixel := int64(4)
	switch {
	case colorType == 3:
		perPixel = 1
	case depth == 16:
		perPixel = 8
	}
	n := pixels(cfg) * perPixel
	kind := fmt.Sprintf("%d-bit PNG", depth)
	if interlaced {
		n *= 2
		kind = fmt.Sprintf("%d-bit interlaced PNG", depth)
	}
	rowBytes := 1 + (int64(cfg.Width)*depth*channels+7)/8
	return kind, n + 2*rowBytes
}

// jpegCost is what image/jpeg allocates for the image whose markers start
// head: every component's samples at the resolution of whole MCUs, 4 bytes
// a sample more for the coefficients of a progressive image, and 4 bytes a
// pixel more for the RGBA or CMYK image that a CMYK or RGB image is
// converted into. Any 3-component image is charged for that conversion:
// whether it happens depends on APP0 and APP14 markers, which may also come
// after the header.
func jpegCost(cfg image.Config, head []byte) (string, int64) {
	f, ok := readFrame(head)
	if !ok { // cannot happen after DecodeConfig: the most it could be
		return "JPEG", pixels(cfg) * 24
	}
	hmax, vmax := 1, 1
	for _, c := range f.comps {
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	mxx := int64((cfg.Width + 8*hmax - 1) / (8 * hmax))
	myy := int64((cfg.Height + 8*vmax - 1) / (8 * vmax))
	var samples int64
	for _, c := range f.comps {
		samples += 64 * mxx * myy * int64(c.h*c.v)
	}
	n, kind := samples, "JPEG"
	if f.progressive {
		n += 4 * samples
		kind = "progressive JPEG"
	}
	if len(f.comps) > 1 {
		n += 4 * pixels(cfg)
	}
	return kind, n
}

func pixels(cfg image.Config) int64 { return int64(cfg.Width) * int64(cfg.Height) }

// jpegFrame is what a JPEG's frame header (SOF0, SOF1 or SOF2) says about
// the decoder's allocations.
type jpegFrame struct {
	progressive bool
	comps       []struct{ h, v int } // sampling factors
}

// readFrame finds the frame header among the markers of head and reads it,
// walking the markers as image/jpeg does: bytes that are not a marker are
// skipped, and so are fill bytes.
func readFrame(head []byte) (jpegFrame, bool) {
	if len(head) < 2 || head[0] != 0xff || head[1] != 0xd8 {
		return jpegFrame{}, false
	}
	for i := 2; i+1 < len(head); {
		if head[i] != 0xff || head[i+1] == 0 {
			i++
			continue
		}
		for i+1 < len(head) && head[i+1] == 0xff {
			i++
		}
		if i+1 >= len(head) {
			break
		}
		marker := head[i+1]
		i += 2
		if 0xd0 <= marker && marker <= 0xd7 || marker == 0xd8 { // RSTn and SOI stand alone
			continue
		}
		if i+2 > len(head) {
			break
		}
		n := int(binary.BigEndian.Uint16(head[i:]))
		if n < 2 || i+n > len(head) {
			break
		}
		seg := head[i+2 : i+n]
		i += n
		if marker == 0xc0 || marker == 0xc1 || marker == 0xc2 {
			return parseFrame(seg, marker == 0xc2)
		}
	}
	return jpegFrame{}, false
}

// parseFrame reads a SOF segment: precision, height, width, the number of
// components, then 3 bytes a component, the second holding its sampling
// factors. A grayscale image's factors are 1×1 whatever it says, as in
// image/jpeg.
func parseFrame(seg []byte, progressive bool) (jpegFrame, bool) {
	if len(seg) < 6 {
		return jpegFrame{}, false
	}
	n := int(seg[5])
	if n < 1 || n > 4 || len(seg) < 6+3*n {
		return jpegFrame{}, false
	}
	f := jpegFrame{progressive: progressive}
	for c := range n {
		hv := seg[7+3*c]
		h, v := int(hv>>4), int(hv&0x0f)
		if n == 1 {
			h, v = 1, 1
		}
		f.comps = append(f.comps, struct{ h, v int }{max(h, 1), max(v, 1)})
	}
	return f, true
}
