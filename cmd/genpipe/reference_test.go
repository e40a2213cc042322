//go:build unix

package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestConfigReferenceUpToDate fails when docs/configuration.md is not what
// the code generates, for instance after a flag was added or reworded.
func TestConfigReferenceUpToDate(t *testing.T) {
	cmds := builtInReference(t)
	want := renderReference(cmds)
	path := filepath.Join(packageDir(t), "..", "..", "docs", "configuration.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v\nwrite it with: go generate ./cmd/genpipe", err)
	}
	if !bytes.Equal(got, want) {
		gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gotLines) && i < len(wantLines) && gotLines[i] == wantLines[i] {
			i++
		}
		line := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end of file)"
		}
		t.Fatalf("docs/configuration.md is out of date; regenerate it with: go generate ./cmd/genpipe\n"+
			"first difference, line %d:\n  file: %s\n  code: %s", i+1, line(gotLines), line(wantLines))
	}
}

// TestParseDefaults checks the parser against what the flag package itself
// prints, so that a change in its format fails here and not silently.
func TestParseDefaults(t *testing.T) {
	var help bytes.Buffer
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(&help)
	fs.Usage = func() {
		fmt.Fprint(&help, "Usage: x [flags]\n\n  -notaflag in the usage text\n\n")
		fs.PrintDefaults()
	}
	fs.String("addr", "127.0.0.1:8080", withEnv("listen address", "GENPIPE_ADDR"))
	fs.String("empty", "", withEnv("no default", "GENPIPE_EMPTY"))
	fs.Int("n", 0, "a number (default 5 when -m is set)")
	fs.Int("count", 3, "how many\nover two lines")
	fs.Duration("wait", 30*time.Second, withEnv("a `TIME` to wait", "GENPIPE_WAIT"))
	fs.Bool("v", false, "one-letter switch")
	fs.Bool("on", true, withEnv("a switch that is on", "GENPIPE_ON"))
	fs.Float64("rate", 0.5, "a rate")
	if err := fs.Parse([]string{"-h"}); err != flag.ErrHelp {
		t.Fatalf("parse -h: %v", err)
	}
	got, err := parseDefaults(help.String())
	if err != nil {
		t.Fatalf("%v in:\n%s", err, help.String())
	}
	want := []refFlag{
		{Name: "addr", Type: "string", Env: "GENPIPE_ADDR", Default: "127.0.0.1:8080", Help: "listen address"},
		{Name: "count", Type: "int", Default: "3", Help: "how many over two lines"},
		{Name: "empty", Type: "string", Env: "GENPIPE_EMPTY", Help: "no default"},
		{Name: "n", Type: "int", Default: "0", Help: "a number (default 5 when -m is set)"},
		{Name: "on", Type: "bool", Env: "GENPIPE_ON", Default: "true", Help: "a switch that is on"},
		{Name: "rate", Type: "float", Default: "0.5", Help: "a rate"},
		{Name: "v", Type: "bool", Default: "false", Help: "one-letter switch"},
		{Name: "wait", Type: "TIME", Env: "GENPIPE_WAIT", Default: "30s", Help: "a TIME to wait"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed\n%s\nas\n%+v\nwant\n%+v", help.String(), got, want)
	}
}

// TestEveryGenpipeVariableIsDocumented looks for GENPIPE_* names in the
// module's code (tests aside): each must be a flag's variable or be listed
// in otherEnv, or the reference would miss it.
func TestEveryGenpipeVariableIsDocumented(t *testing.T) {
	cmds := builtInReference(t)
	documented := map[string]bool{}
	for _, c := range cmds {
		for _, f := range c.Flags {
			documented[f.Env] = true
		}
	}
	for _, e := range otherEnv {
		documented[e.Env] = true
	}
	name := regexp.MustCompile(`^GENPIPE_[A-Z0-9_]+$`)
	root := filepath.Join(packageDir(t), "..", "..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && name.MatchString(s) && !documented[s] {
				t.Errorf("%s reads %s, which is not a flag's variable: add it to otherEnv in reference.go", fset.Position(lit.Pos()), s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// builtInReference returns every command's flags and variables with their
// built-in defaults, whatever GENPIPE_* variables the tests run with.
func builtInReference(t *testing.T) []refCommand {
	t.Helper()
	clearGenpipeEnv(t)
	cmds, err := flagReference(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cmds
}

// clearGenpipeEnv unsets every GENPIPE_* variable for the test, so that
// flag defaults are the built-in ones.
func clearGenpipeEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "GENPIPE_") {
			t.Setenv(name, "") // restored after the test
			os.Unsetenv(name)
		}
	}
}

// TestOperationsGuide checks the names docs/operations.md uses: every
// genpipe command line in it must parse against the flag sets, and every
// genpipe_* metric must be one the metrics package defines.
func TestOperationsGuide(t *testing.T) {
	root := filepath.Join(packageDir(t), "..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	flags := deployFlagSets(t)
	table := commands()
	commandLine := regexp.MustCompile("genpipe ([a-z][a-z-]*)([^`#\n]*)")
	for i, line := range strings.Split(string(doc), "\n") {
		for _, m := range commandLine.FindAllStringSubmatch(line, -1) {
			args := append([]string{m[1]}, strings.Fields(m[2])...)
			if _, ok := table[m[1]]; !ok {
				continue // prose: "genpipe exists because ..."
			}
			if subs := subcommands[m[1]]; subs != nil && (len(args) < 2 || !slices.Contains(subs, args[1])) {
				continue // the command's name alone: "genpipe dlq"
			}
			checkCommandLine(t, flags, fmt.Sprintf("docs/operations.md:%d", i+1), args)
		}
	}

	var source strings.Builder
	files, _ := filepath.Glob(filepath.Join(root, "metrics", "*.go"))
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			source.Write(data)
		}
	}
	metric := regexp.MustCompile(`genpipe_([a-z_]*[a-z])`)
	for _, m := range metric.FindAllStringSubmatch(string(doc), -1) {
		name := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m[1], "")
		if !strings.Contains(source.String(), strconv.Quote(name)) {
			t.Errorf("docs/operations.md names %s, which the metrics package does not define", m[0])
		}
	}
}
