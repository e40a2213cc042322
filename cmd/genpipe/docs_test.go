package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	markdownLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	markdownHeading = regexp.MustCompile(`(?m)^#+ (.*)$`)
	notAnchorChar   = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
)

// Every relative link in the README and docs/ names a file of the
// repository, and every #fragment a heading of the page it points to: the
// docs were reorganized once, and a reader following a dead link is lost.
func TestDocsLinksResolve(t *testing.T) {
	root := filepath.Join(packageDir(t), "..", "..")
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"))
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markdownLink.FindAllStringSubmatch(string(text), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(link, "#")
			target := page
			if file != "" {
				target = filepath.Join(filepath.Dir(page), file)
			}
			rel, _ := filepath.Rel(root, page)
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s links to %s: no such file", rel, link)
				continue
			}
			if fragment != "" && strings.HasSuffix(target, ".md") && !hasAnchor(t, target, fragment) {
				t.Errorf("%s links to %s: no such heading", rel, link)
			}
		}
	}
}

// hasAnchor reports whether the markdown page has a heading whose GitHub
// anchor is fragment.
func hasAnchor(t *testing.T, page, fragment string) bool {
	text, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range markdownHeading.FindAllStringSubmatch(string(text), -1) {
		anchor := strings.ReplaceAll(notAnchorChar.ReplaceAllString(strings.ToLower(strings.TrimSpace(m[1])), ""), " ", "-")
		if anchor == fragment {
			return true
		}
	}
	return false
}
