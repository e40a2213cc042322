package slide

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

const ellipsis = "…"

// cleanText makes user text safe for all three formats: valid UTF-8, no
// control characters (XML 1.0 forbids most of them), single spaces, and at
// most one blank line between paragraphs. The wrapper relies on the single
// spaces: every line it makes is then a substring of the cleaned text.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u2028", "\n", "\u2029", "\n").Replace(s)
	var paras []string
	blank := false
	for p := range strings.SplitSeq(s, "\n") {
		p = strings.Join(strings.Fields(strings.Map(dropControl, p)), " ")
		if p == "" {
			blank = len(paras) > 0
			continue
		}
		if blank {
			paras = append(paras, "")
			blank = false
		}
		paras = append(paras, p)
	}
	return strings.Join(paras, "\n")
}

// cleanTitle is cleanText on one paragraph: a title wraps but has no breaks.
func cleanTitle(s string) string {
	return strings.Join(strings.Fields(cleanText(s)), " ")
}

// dropControl turns tabs into spaces and drops the other control characters
// and the noncharacters XML cannot carry.
func dropControl(r rune) rune {
	switch {
	case r == '\t':
		return ' '
	case unicode.IsControl(r), r == 0xFFFE, r == 0xFFFF:
		return -1
	}
	return r
}

// measurer measures text in one face. Advances are cached per rune because
// fitting wraps the same text at several sizes. It ignores kerning, which
// the Go fonts barely use, so that a line's width is the sum of its parts.
type measurer struct {
	face font.Face
	adv  map[rune]fixed.Int26_6
}

func newMeasurer(f *opentype.Font, size float64) (*measurer, error) {
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		return nil, err
	}
	return &measurer{face: face, adv: make(map[rune]fixed.Int26_6)}, nil
}

func (m *measurer) width(s string) fixed.Int26_6 {
	var w fixed.Int26_6
	for _, r := range s {
		w += m.advance(r)
	}
	return w
}

func (m *measurer) advance(r rune) fixed.Int26_6 {
	a, ok := m.adv[r]
	if !ok {
		// A rune the font lacks draws as its .notdef box; measure that.
		a, _ = m.face.GlyphAdvance(r)
		m.adv[r] = a
	}
	return a
}

// span is one wrapped line: text[start:end] of the cleaned text.
type span struct{ start, end int }

// wrap breaks text into lines no wider than maxW: at spaces where it can,
// inside a word when the word alone is too wide (long URLs, CJK text without
// spaces).
func wrap(m *measurer, text string, maxW fixed.Int26_6) []span {
	var lines []span
	off := 0
	for para := range strings.SplitSeq(text, "\n") {
		lines = wrapParagraph(m, para, off, maxW, lines)
		off += len(para) + 1
	}
	return lines
}

func wrapParagraph(m *measurer, para string, off int, maxW fixed.Int26_6, lines []span) []span {
	if para == "" {
		return append(lines, span{off, off})
	}
	space := m.width(" ")
	cur, curW, open := span{}, fixed.Int26_6(0), false
	for wordStart := 0; wordStart < len(para); {
		wordEnd := strings.IndexByte(para[wordStart:], ' ')
		if wordEnd < 0 {
			wordEnd = len(para)
		} else {
			wordEnd += wordStart
		}
		word := para[wordStart:wordEnd]
		w := m.width(word)
		if open && curW+space+w <= maxW {
			cur.end, curW = off+wordEnd, curW+space+w
		} else {
			if open {
				lines = append(lines, cur)
			}
			lines, cur, curW = breakWord(m, word, off+wordStart, maxW, lines)
			open = true
		}
		wordStart = wordEnd + 1
	}
	return append(lines, cur)
}

// breakWord starts a line with word, cutting off full lines while the word is
// wider than maxW, after a '/' or '-' when there is one (URLs, paths) and
// anywhere otherwise. It returns the unfinished last piece and its width.
// Each line holds at least one rune, so a column narrower than a glyph
// still ends.
func breakWord(m *measurer, word string, off int, maxW fixed.Int26_6, lines []span) ([]span, span, fixed.Int26_6) {
	start, w := 0, fixed.Int26_6(0)
	soft := -1 // just after the piece's last '/' or '-'
	for i, r := range word {
		a := m.advance(r)
		if w+a > maxW && i > start {
			cut := i
			if soft > start && m.width(word[soft:i])+a <= maxW {
				cut = soft
			}
			lines = append(lines, span{off + start, off + cut})
			start, w, soft = cut, m.width(word[cut:i]), -1
		}
		w += a
		if r == '/' || r == '-' {
			soft = i + utf8.RuneLen(r)
		}
	}
	return lines, span{off + start, off + len(word)}, w
}

// shorten cuts text[s] so that it plus an ellipsis fits maxW, preferring a
// word boundary, and returns the line's text with the ellipsis.
func shorten(m *measurer, text string, s span, maxW fixed.Int26_6) string {
	full := text[s.start:s.end]
	line := full
	budget := maxW - m.width(ellipsis)
	for line != "" && m.width(line) > budget {
		_, size := utf8.DecodeLastRuneInString(line)
		line = line[:len(line)-size]
	}
	if len(line) < len(full) && full[len(line)] != ' ' {
		// The cut fell inside a word: drop the stump unless it is all there is.
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			line = line[:i]
		}
	}
	return strings.TrimRight(line, " ") + ellipsis
}
