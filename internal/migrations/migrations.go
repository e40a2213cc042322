// Package migrations reads the schema migrations the status stores embed:
// files named NNNN_name.sql, applied in version order, each once. How a
// migration is applied and recorded is each store's own (its dialect and
// locking); which migrations exist and in what order is this package's.
package migrations

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema change.
type Migration struct {
	Version int    // NNNN of the file name, ≥ 1
	Name    string // the file name, e.g. 0001_init.sql
	SQL     string // the file's statements
}

// List reads migrations/*.sql from fsys, sorted by version. A file not
// named NNNN_name.sql, or two files with one version, is an error.
func List(fsys fs.FS) ([]Migration, error) {
	files, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var all []Migration
	for _, f := range files {
		name := path.Base(f)
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version < 1 {
			return nil, fmt.Errorf("migrate: %s: name is not NNNN_name.sql", f)
		}
		if i := slices.IndexFunc(all, func(m Migration) bool { return m.Version == version }); i >= 0 {
			return nil, fmt.Errorf("migrate: %s and %s have the same version", all[i].Name, name)
		}
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		all = append(all, Migration{Version: version, Name: name, SQL: string(body)})
	}
	slices.SortFunc(all, func(a, b Migration) int { return a.Version - b.Version })
	return all, nil
}
