package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/slide"
)

// A missing font is named at start with the package that installs it.
func TestWarnMissingFonts(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	warnMissingFonts(log, nil)
	if buf.Len() != 0 {
		t.Errorf("logged %q with every font installed", buf.String())
	}
	warnMissingFonts(log, []slide.MissingFont{{Scripts: "Arabic", Package: "fonts-noto-core"},
		{Scripts: "Thai", Package: "fonts-noto-core"}, {Scripts: "emoji", Package: "fonts-noto-color-emoji"}})
	for _, want := range []string{"Arabic, Thai, emoji", "apt-get install fonts-noto-core fonts-noto-color-emoji"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}
