package aisim

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pngChunk is an extra chunk for pngFile, written before the pixels.
type pngChunk struct {
	typ  string
	data []byte
}

// pngFile encodes a w×h PNG of the given bit depth and color type (0 gray,
// 2 RGB, 3 paletted, 4 gray and alpha, 6 RGBA), streaming its rows through
// zlib, so that even an image that decodes to hundreds of MiB costs little
// memory to make. pixel, if not nil, fills the bytes of pixel (x, y), which
// are zero otherwise; an interlaced image needs whole bytes a pixel.
func pngFile(t testing.TB, w, h int, depth, colorType byte, interlaced bool, pixel func(x, y int, p []byte), chunks ...pngChunk) []byte {
	t.Helper()
	channels := map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType]
	bits := int(depth) * channels
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(w)), uint32(h))
	ihdr = append(ihdr, depth, colorType, 0, 0, 0)
	if interlaced {
		ihdr[12] = 1
	}
	writeChunk(&out, "IHDR", ihdr)
	for _, c := range chunks {
		writeChunk(&out, c.typ, c.data)
	}
	var idat bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	writeRows := func(x0, dx, y0, dy int) { // one pass: every dx-th pixel of every dy-th row
		cols := (w - x0 + dx - 1) / dx
		if x0 >= w || y0 >= h {
			return
		}
		row := make([]byte, 1+(cols*bits+7)/8) // filter type 0, then the pixels
		for y := y0; y < h; y += dy {
			clear(row)
			if pixel != nil {
				for i := range cols {
					pixel(x0+i*dx, y, row[1+i*bits/8:1+(i+1)*bits/8])
				}
			}
			if _, err := zw.Write(row); err != nil {
				t.Fatal(err)
			}
		}
	}
	if interlaced {
		for _, p := range [][4]int{{0, 8, 0, 8}, {4, 8, 0, 8}, {0, 4, 4, 8}, {2, 4, 0, 4}, {0, 2, 2, 4}, {1, 2, 0, 2}, {0, 1, 1, 2}} {
			writeRows(p[0], p[1], p[2], p[3])
		}
	} else {
		writeRows(0, 1, 0, 1)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	writeChunk(&out, "IDAT", idat.Bytes())
	writeChunk(&out, "IEND", nil)
	return out.Bytes()
}

// pngHead is the start of a w×h PNG, up to its header chunk: all a
// service reads of an image it refuses from the header.
func pngHead(w, h int, depth, colorType byte) []byte {
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(w)), uint32(h))
	writeChunk(&out, "IHDR", append(ihdr, depth, colorType, 0, 0, 0))
	return out.Bytes()
}

// jpegHead is a JPEG whose frame header says w×h: a 16×16 baseline 4:2:0
// image, as image/jpeg encodes it, with its size patched.
func jpegHead(t testing.TB, w, h int) []byte {
	data := jpegFile(t, image.NewYCbCr(image.Rect(0, 0, 16, 16), image.YCbCrSubsampleRatio420))
	i := bytes.Index(data, []byte{0xff, 0xc0})
	binary.BigEndian.PutUint16(data[i+5:], uint16(h))
	binary.BigEndian.PutUint16(data[i+7:], uint16(w))
	return data
}

func writeChunk(out *bytes.Buffer, typ string, data []byte) {
	out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	out.WriteString(typ)
	out.Write(data)
	out.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
}

// gradient fills a pixel of any layout with values that vary with x and y.
func gradient(x, y int, p []byte) {
	for i := range p {
		p[i] = byte(x*(i+1) + y*(3-i))
	}
}

func jpegFile(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodeAllocated returns the bytes decoding data allocates. It must not
// run in parallel with other tests.
func decodeAllocated(t *testing.T, format string, data []byte) int64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var err error
	if format == "png" {
		_, err = png.Decode(bytes.NewReader(data))
	} else {
		_, err = jpeg.Decode(bytes.NewReader(data))
	}
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// headerOf reads the header of data as the services do.
func headerOf(t *testing.T, data []byte) imageHeader {
	t.Helper()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("DecodeConfig: %v", err)
	}
	return readHeader(format, cfg, data)
}

// The charge worked out from an image's header is at least what decoding it
// allocates, for every pixel layout the decoders have; where the header
// tells all, it is no more than a tenth over.
func TestHeaderChargeBoundsDecoding(t *testing.T) {
	const w, h = 640, 480
	palette := pngChunk{"PLTE", bytes.Repeat([]byte{10, 20, 30}, 256)}
	paletted := func(x, y int, p []byte) { p[0] = byte(x + y) }
	ycbcr := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i := range ycbcr.Y {
		ycbcr.Y[i] = byte(i)
	}
	gray := image.NewGray(image.Rect(0, 0, w, h))
	for i := range gray.Pix {
		gray.Pix[i] = byte(i / 7)
	}
	type testCase struct {
		name  string
		data  []byte
		tight bool   // the header tells the decoded layout: the charge is close
		kind  string // as the reasons name it; "" for any
	}
	cases := []testCase{
		{"gray 8-bit", pngFile(t, w, h, 8, 0, false, gradient), false, "8-bit PNG"},
		{"gray 8-bit with tRNS", pngFile(t, w, h, 8, 0, false, gradient, pngChunk{"tRNS", []byte{0, 7}}), true, "8-bit PNG"},
		{"gray 16-bit with tRNS", pngFile(t, w, h, 16, 0, false, gradient, pngChunk{"tRNS", []byte{0, 7}}), true, "16-bit PNG"},
		{"gray 2-bit", pngFile(t, w, h, 2, 0, false, nil), false, "2-bit PNG"},
		{"paletted 8-bit", pngFile(t, w, h, 8, 3, false, paletted, palette), true, "8-bit PNG"},
		{"paletted 4-bit", pngFile(t, w, h, 4, 3, false, nil, pngChunk{"PLTE", bytes.Repeat([]byte{10, 20, 30}, 16)}), true, "4-bit PNG"},
		{"RGB 8-bit", pngFile(t, w, h, 8, 2, false, gradient), true, "8-bit PNG"},
		{"gray and alpha 16-bit", pngFile(t, w, h, 16, 4, false, gradient), true, "16-bit PNG"},
		{"RGBA 8-bit", pngFile(t, w, h, 8, 6, false, gradient), true, "8-bit PNG"},
		{"RGBA 16-bit", pngFile(t, w, h, 16, 6, false, gradient), true, "16-bit PNG"},
		{"RGB 8-bit interlaced", pngFile(t, w, h, 8, 2, true, gradient), true, "8-bit interlaced PNG"},
		{"RGBA 16-bit interlaced", pngFile(t, w, h, 16, 6, true, gradient), true, "16-bit interlaced PNG"},
		{"JPEG 4:2:0", jpegFile(t, ycbcr), false, "JPEG"},
		{"JPEG gray", jpegFile(t, gray), true, "JPEG"},
	}
	// The standard library's test images cover the layouts its encoder
	// cannot make: progressive, every subsampling, CMYK, RGB.
	if dir := goTestdata(t); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*.jpeg"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				continue // the truncated one
			}
			name := filepath.Base(f)
			cases = append(cases, testCase{name, data, strings.Contains(name, "gray"), ""})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hd := headerOf(t, tc.data)
			if tc.kind != "" && hd.kind != tc.kind {
				t.Errorf("kind %q, want %q", hd.kind, tc.kind)
			}
			if raceEnabled {
				t.Skip("the race detector changes allocations")
			}
			got := decodeAllocated(t, hd.format, tc.data)
			t.Logf("%s: decoding allocated %d KiB; charged %d KiB", hd.kind, got>>10, hd.decodedBytes>>10)
			if got > hd.decodedBytes {
				t.Errorf("decoding allocated %d bytes; the header charged only %d", got, hd.decodedBytes)
			}
			if tc.tight && hd.decodedBytes > got+got/10+decoderBytes {
				t.Errorf("the header charged %d bytes; decoding allocated %d: want at most a tenth over", hd.decodedBytes, got)
			}
		})
	}
}

// goTestdata returns the standard library's image test data, or "" if
// this Go installation lacks its sources.
func goTestdata(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Logf("go env GOROOT: %v; skipping the standard library's test images", err)
		return ""
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "src", "image", "testdata")
	if _, err := os.Stat(dir); err != nil {
		t.Logf("no %s; skipping the standard library's test images", dir)
		return ""
	}
	return dir
}

// The charge of the attack image, an 8000×8000 16-bit RGBA PNG, is what it
// decodes to: 8 bytes a pixel, 489 MiB, from its header alone.
func TestHeaderChargeOfLargeImages(t *testing.T) {
	for _, tc := range []struct {
		name      string
		data      []byte
		kind      string
		atLeast   int64
		atMostMiB int64
	}{
		{"16-bit RGBA PNG", pngHead(8000, 8000, 16, 6), "16-bit PNG", 8000 * 8000 * 8, 489},
		{"8-bit RGBA PNG", pngHead(8000, 8000, 8, 6), "8-bit PNG", 8000 * 8000 * 4, 245},
		{"24 MP JPEG", jpegHead(t, 6000, 4000), "JPEG", 6000 * 4000 * 3 / 2, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hd := headerOf(t, tc.data)
			if hd.kind != tc.kind || hd.decodedBytes < tc.atLeast || hd.decodedBytes > tc.atMostMiB<<20 {
				t.Errorf("%s charged %d bytes (%s); want %s from %d bytes to %d MiB", tc.name, hd.decodedBytes, mib(hd.decodedBytes), tc.kind, tc.atLeast, tc.atMostMiB)
			}
		})
	}
}

// readFrame walks markers as image/jpeg does: fill bytes and stray bytes
// between segments are skipped, and a header cut short is no frame.
func TestReadFrame(t *testing.T) {
	sof := []byte{0xff, 0xc2, 0, 17, 8, 0, 64, 0, 64, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1}
	app := []byte{0xff, 0xe1, 0, 6, 'E', 'x', 0xff, 0xc0} // a payload that looks like a marker
	for _, tc := range []struct {
		name string
		head []byte
		ok   bool
	}{
		{"plain", concat([]byte{0xff, 0xd8}, sof), true},
		{"after a segment", concat([]byte{0xff, 0xd8}, app, sof), true},
		{"fill bytes and stray data", concat([]byte{0xff, 0xd8, 0x12, 0xff, 0x00, 0x34}, app, []byte{0xff, 0xff}, sof), true},
		{"cut short", concat([]byte{0xff, 0xd8}, sof[:10]), false},
		{"no SOI", sof, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := readFrame(tc.head)
			if ok != tc.ok {
				t.Fatalf("found a frame: %v, want %v", ok, tc.ok)
			}
			if ok && (!f.progressive || len(f.comps) != 3 || f.comps[0].h != 2 || f.comps[0].v != 2 || f.comps[1].h != 1) {
				t.Errorf("frame %+v, want progressive 4:2:0", f)
			}
		})
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
