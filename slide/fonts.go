package slide

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-text/typesetting/font"
	ot "github.com/go-text/typesetting/font/opentype"
)

// fallbackFont is a system font for the scripts the Go fonts lack. The Go
// fonts (Latin, Greek, Cyrillic) set the text first, so a slide in those
// scripts looks the same on every machine; a rune they lack is set in the
// first fallback that has it, and one that no font has falls back to the
// style's Go font, as a box.
type fallbackFont struct {
	scripts       string // what it covers, for the start-up report
	pkg           string // the Debian package that installs it
	family        string // the family office applications know (PPTX)
	regular, bold string // file names in fontDirs
	index         int    // the font's index in a collection (.ttc)
	probe         rune   // a rune it must have
}

// fontDirs are where Debian's Noto packages put their fonts.
var fontDirs = []string{"/usr/share/fonts/truetype/noto", "/usr/share/fonts/opentype/noto"}

// fallbacks, in the order tried. The CJK collection's third font is the
// simplified Chinese one; all of its fonts cover kana and hangul too.
var fallbacks = []fallbackFont{
	{scripts: "Latin, Greek and Cyrillic beyond the Go fonts", pkg: "fonts-noto-core", family: "Noto Sans",
		regular: "NotoSans-Regular.ttf", bold: "NotoSans-Bold.ttf", probe: 'ẞ'},
	{scripts: "Arabic", pkg: "fonts-noto-core", family: "Noto Sans Arabic",
		regular: "NotoSansArabic-Regular.ttf", bold: "NotoSansArabic-Bold.ttf", probe: 'ب'},
	{scripts: "Hebrew", pkg: "fonts-noto-core", family: "Noto Sans Hebrew",
		regular: "NotoSansHebrew-Regular.ttf", bold: "NotoSansHebrew-Bold.ttf", probe: 'ש'},
	{scripts: "Devanagari", pkg: "fonts-noto-core", family: "Noto Sans Devanagari",
		regular: "NotoSansDevanagari-Regular.ttf", bold: "NotoSansDevanagari-Bold.ttf", probe: 'क'},
	{scripts: "Thai", pkg: "fonts-noto-core", family: "Noto Sans Thai",
		regular: "NotoSansThai-Regular.ttf", bold: "NotoSansThai-Bold.ttf", probe: 'ก'},
	{scripts: "Chinese, Japanese and Korean", pkg: "fonts-noto-cjk", family: "Noto Sans CJK SC",
		regular: "NotoSansCJK-Regular.ttc", bold: "NotoSansCJK-Bold.ttc", index: 2, probe: '市'},
	{scripts: "emoji", pkg: "fonts-noto-color-emoji", family: "Noto Color Emoji",
		regular: "NotoColorEmoji.ttf", bold: "NotoColorEmoji.ttf", probe: '🚀'},
}

// fallbackFonts are the fallbacks' parsed fonts, regular and bold, each
// loaded on first use: a slide in Latin never loads the 20 MB CJK font. A
// parsed font.Font is safe for concurrent use; faces are made per render.
var fallbackFonts = func() [][2]func() *font.Font {
	out := make([][2]func() *font.Font, len(fallbacks))
	for i, fb := range fallbacks {
		for w, name := range [2]string{fb.regular, fb.bold} {
			out[i][w] = sync.OnceValue(func() *font.Font {
				f, err := loadFont(name, fb.index, fb.probe)
				if err != nil {
					return nil // reported by MissingFonts; the text falls back
				}
				return f
			})
		}
	}
	return out
}()

// loadFont parses the font at index of the first file called name in
// fontDirs and checks that it has probe.
func loadFont(name string, index int, probe rune) (*font.Font, error) {
	var lastErr error
	for _, dir := range fontDirs {
		f, err := parseFontFile(filepath.Join(dir, name), index)
		if err != nil {
			lastErr = err
			continue
		}
		if _, ok := f.NominalGlyph(probe); !ok {
			return nil, fmt.Errorf("slide: font %s has no %q", name, probe)
		}
		return f, nil
	}
	return nil, lastErr
}

func parseFontFile(path string, index int) (*font.Font, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	lds, err := ot.NewLoaders(file)
	if err != nil {
		return nil, fmt.Errorf("slide: font %s: %w", path, err)
	}
	if index >= len(lds) {
		return nil, fmt.Errorf("slide: font %s has %d fonts, not %d", path, len(lds), index+1)
	}
	f, err := font.NewFont(lds[index])
	if err != nil {
		return nil, fmt.Errorf("slide: font %s: %w", path, err)
	}
	return f, nil
}

// MissingFont is a script slides cannot show because its font is not
// installed, and the Debian package that installs it.
type MissingFont struct {
	Scripts, Package string
}

// MissingFonts lists the scripts whose fonts are not installed: their text
// renders as boxes until the package is installed. It loads every fallback
// font, so it is for start-up, not for each render.
func MissingFonts() []MissingFont {
	var out []MissingFont
	for i, fb := range fallbacks {
		if fallbackFonts[i][0]() == nil {
			out = append(out, MissingFont{Scripts: fb.scripts, Package: fb.pkg})
		}
	}
	return out
}
