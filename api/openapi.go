package api

import (
	_ "embed"
	"net/http"
)

// openapiJSON is the OpenAPI 3.1 description of this API, kept by hand next
// to the handlers it describes. The tests of this package and of
// cmd/genpipe check every request they make and every answer they get
// against it (internal/contract), so it cannot drift from them.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3.1 description of the API, as GET
// /openapi.json serves it.
func OpenAPI() []byte { return append([]byte(nil), openapiJSON...) }

// serveOpenAPI serves the description, outside the API key guard: it is
// public, as the routes it lists are.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openapiJSON)
}
