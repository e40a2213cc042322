package main

import (
	"log/slog"
	"strings"

	"github.com/genpipe/genpipe/slide"
)

// warnMissingFonts says at start which scripts slides will show as boxes
// because their fonts are not installed, and the Debian packages to install.
func warnMissingFonts(log *slog.Logger, missing []slide.MissingFont) {
	if len(missing) == 0 {
		return
	}
	var scripts, pkgs []string
	seen := map[string]bool{}
	for _, m := range missing {
		scripts = append(scripts, m.Scripts)
		if !seen[m.Package] {
			seen[m.Package] = true
			pkgs = append(pkgs, m.Package)
		}
	}
	log.Warn("slides will show these scripts as boxes: their fonts are not installed",
		"scripts", strings.Join(scripts, ", "), "install", "apt-get install "+strings.Join(pkgs, " "))
}
