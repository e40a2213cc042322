package api

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/genpipe/genpipe"
)

// pageLimits are the limits the web page checks a request against before it
// uploads anything. They come from the server's configuration and the
// domain's constants, so the page and the API never disagree: the page
// reads them from its body's data attributes.
type pageLimits struct {
	MaxUploadBytes int64
	MinImageSide   int
	MaxImageSide   int
	MaxDescription int
	MaxTitle       int
	ContentTypes   []string // the image types POST /v1/uploads takes
}

// Accept is ContentTypes as a file input's accept attribute wants them.
func (l pageLimits) Accept() string { return strings.Join(l.ContentTypes, ",") }

// Types is ContentTypes for a data attribute, space-separated.
func (l pageLimits) Types() string { return strings.Join(l.ContentTypes, " ") }

// pageHandler renders the web page once, with the server's limits in it,
// and serves it at / and at /requests/{id}: the page of one request, which
// reload, bookmarks and shared links open (the page reads the id from its
// URL). The id is not looked up here: the page asks the API, with the
// user's key when keys are on, and says so when there is no such request.
func (s *Server) pageHandler() (http.Handler, error) {
	tmpl, err := template.ParseFS(webFS, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("web page: %w", err)
	}
	var page bytes.Buffer
	err = tmpl.Execute(&page, pageLimits{
		MaxUploadBytes: s.cfg.maxUpload, MinImageSide: genpipe.MinImageSide, MaxImageSide: genpipe.MaxImageSide,
		MaxDescription: s.cfg.maxDescLen, MaxTitle: s.cfg.maxTitleLen,
		ContentTypes: slices.Sorted(maps.Keys(uploadContentTypes)),
	})
	if err != nil {
		return nil, fmt.Errorf("web page: %w", err)
	}
	body := page.Bytes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	}), nil
}

// assetTypes are the content types of the page's assets, by extension.
var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// routeAssets serves each file of web/assets at /assets/NAME, and the
// favicon at /favicon.ico as well, where browsers and tools look first.
func (s *Server) routeAssets() error {
	names, err := fs.Glob(webFS, "web/assets/*")
	if err != nil {
		return fmt.Errorf("web assets: %w", err)
	}
	for _, name := range names {
		data, err := fs.ReadFile(webFS, name)
		if err != nil {
			return fmt.Errorf("web assets: %w", err)
		}
		contentType := assetTypes[path.Ext(name)]
		if contentType == "" {
			return fmt.Errorf("web assets: %s: no content type for its extension", name)
		}
		serve := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			_, _ = w.Write(data)
		}
		route := "/assets/" + path.Base(name)
		s.mux.HandleFunc("GET "+route, serve)
		if strings.HasPrefix(path.Base(name), "favicon.") {
			s.mux.HandleFunc("GET /favicon.ico", serve)
		}
	}
	return nil
}
