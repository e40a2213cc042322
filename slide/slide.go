// Package slide renders the slide the Generative AI makes: the user's image,
// a title, an accent rule and the description, themed by a genpipe.Style, as
// 1920×1080 PNGs, a 16:9 PDF and a PPTX. A description too long for one
// slide at a readable size continues on further slides of the deck.
//
// The three formats share one layout, computed once in pixels of the PNG
// (1 px = 0.5 pt = 6350 EMU), so they show the same lines in the same places.
// Text is shaped with HarfBuzz (github.com/go-text/typesetting) in the Go
// fonts, falling back to Debian's Noto fonts for the scripts they lack
// (fonts.go); the PNG rasterizes the glyph outlines and color emoji, the
// PDF draws the same outlines as paths, embedding no font. The PPTX keeps
// the text as text and names common office fonts (Arial, Courier New), as
// Go fonts are rarely installed where PPTX files are opened, and the Noto
// families for east-Asian and complex scripts.
package slide

import (
	"fmt"
	"image"
	"unicode/utf8"

	"github.com/genpipe/genpipe"
)

// Files is one rendered deck in three formats. Most decks are one slide;
// text too long for one at a readable size continues on further slides:
// more PDF pages, more PPTX slides, and a PNG each in MorePNG.
type Files struct {
	PNG, PDF, PPTX []byte
	// MorePNG are the PNGs of the slides after the first, in order.
	MorePNG [][]byte
}

// Render draws a 1920×1080 slide: img fitted (aspect preserved) on the
// style's ImageSide inside an accent frame, the title, an accent rule and
// the description, shaped (any script the installed fonts cover, right to
// left where the script runs so), word-wrapped and shrunk to fit down to a
// readable size, then continued on further slides, over a vertical
// gradient from BackgroundTop to BackgroundBottom.
//
// An unusable style (a color that is not #rrggbb, an unknown Font or
// ImageSide) or an empty image is an error with code genpipe.EINVALID: the
// input is wrong and retrying will not help.
//
// Render is safe for concurrent use.
func Render(img image.Image, style genpipe.Style, title, description string) (Files, error) {
	th, err := newTheme(style)
	if err != nil {
		return Files{}, err
	}
	if img == nil || img.Bounds().Empty() {
		return Files{}, errInvalid("the image is empty")
	}
	title = cleanTitle(title)
	body := bodyText(title, description)
	if n := utf8.RuneCountInString(title) + utf8.RuneCountInString(body); n > MaxTextRunes {
		return Files{}, errInvalid("the title and description are %d characters; at most %d fit a deck", n, MaxTextRunes)
	}
	lay := newLayout(th, newTypesetter(), img.Bounds().Size(), title, body)
	if lay.overflow {
		return Files{}, errInvalid("the title is too long for a slide: shorten it")
	}
	if len(lay.pages) > MaxSlides {
		return Files{}, errInvalid("the title and description need %d slides; at most %d make a deck: shorten them or join short lines",
			len(lay.pages), MaxSlides)
	}
	pic := scaleImage(img, lay.image)
	picPNG, err := encodePNG(pic)
	if err != nil {
		return Files{}, fmt.Errorf("slide: encode picture: %w", err)
	}

	var f Files
	for n := range lay.pages {
		out, err := renderPNG(th, lay, n, pic)
		if err != nil {
			return Files{}, err
		}
		if n == 0 {
			f.PNG = out
		} else {
			f.MorePNG = append(f.MorePNG, out)
		}
	}
	if f.PDF, err = renderPDF(th, lay, picPNG, title); err != nil {
		return Files{}, err
	}
	if f.PPTX, err = renderPPTX(th, lay, picPNG, title); err != nil {
		return Files{}, err
	}
	return f, nil
}

// MaxSlides is the most slides a deck has, and MaxTextRunes the most
// characters of title and description Render sets: they bound a render's
// time and memory whatever the input. 2000 characters of description and
// 200 of title, the API's limits, need at most four slides in any script
// and style (a thousand one-word lines need more); what needs more is
// refused (EINVALID), never cut.
const (
	MaxSlides    = genpipe.MaxSlides
	MaxTextRunes = 20000
)

// RenderBytes bounds the memory Render allocates, garbage included, for an
// image of the given size, the image itself aside: what a service that
// renders many slides at once should set aside for each. It is the canvas,
// the encoders, shaping, the glyphs drawn and the files of up to MaxSlides
// slides (renderBytes),
// plus the picture, which the encoders copy and compress, a few times its
// size, and the scaling, which grows with the image's width only (see
// scaleImage). It is at most MaxRenderBytes for any image up to 8000 pixels
// a side.
func RenderBytes(size image.Point) int64 {
	if size.X <= 0 || size.Y <= 0 {
		return renderBytes
	}
	pic := fitImage(size, rect{w: imageColW, h: contentH})
	dst := image.Pt(int(pic.w), int(pic.h))
	return renderBytes + perPictureByte*4*int64(dst.X*dst.Y) + scaleBytes(size, dst)
}

// MaxRenderBytes is the most RenderBytes says for an image up to 8000
// pixels a side.
const MaxRenderBytes = 101 << 20

// renderBytes and perPictureByte are measured by TestRenderBytesBounds on
// the costliest slides (an incompressible translucent picture, the longest
// texts, up to MaxSlides slides, the first with the picture), then rounded
// up. The fallback fonts are loaded once per process (the CJK one is about
// 20 MB), not per render.
const (
	renderBytes    = 40 << 20
	perPictureByte = 24
)

// errInvalid refuses input the renderer cannot use (a bad style, no image).
func errInvalid(format string, args ...any) error {
	return fmt.Errorf("slide: %w", genpipe.Errorf(genpipe.EINVALID, format, args...))
}

// bodyText is the description as the slide shows it under the title: none
// when it only repeats the title (a request without a title gets its
// description's first line as one, and a one-line description would
// otherwise appear twice).
func bodyText(title, description string) string {
	body := cleanText(description)
	if body == title {
		return ""
	}
	return body
}
