package slide

import (
	"strings"
	"unicode"
)

// cleanText makes user text safe for all three formats: valid UTF-8, no
// control characters (XML 1.0 forbids most of them), single spaces, and at
// most one blank line between paragraphs.
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
