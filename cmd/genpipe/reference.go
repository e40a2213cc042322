package main

//go:generate go run . config-reference -o ../../docs/configuration.md

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The configuration reference, docs/configuration.md, is generated from the
// commands themselves so that it cannot drift: each command in commands()
// is run with -h, which builds its whole flag set, prints it and returns
// before doing anything else, and the printout is parsed back. That covers
// every command the same way, whichever file defines its flags, and a flag
// added anywhere appears in the reference with no further edit
// (TestConfigReferenceUpToDate then asks for the file to be regenerated).
// So a command must parse its flags before it does anything.

// subcommands lists the commands that take a subcommand word before their
// flags, with the words: their flag sets differ by subcommand.
var subcommands = map[string][]string{"dlq": {"list", "replay"}, "bench": {"intake"}}

// otherEnv are the GENPIPE_* variables read outside a flag, by command.
// TestEveryGenpipeVariableIsDocumented fails on a GENPIPE_* name in the
// code that neither a flag nor this list documents.
var otherEnv = []refEnv{
	{Command: "up", Env: "GENPIPE_WEBHOOK_SECRET",
		Help: "the webhook signing secret written to secrets.json when the data dir has none yet (otherwise a new random whsec_ one); later starts read the file"},
}

type refEnv struct{ Command, Env, Help string }

// refCommand is one command's (or subcommand's) flags.
type refCommand struct {
	Name    string // as typed after genpipe: "worker", "dlq list"
	Summary string // from the usage text
	Flags   []refFlag
}

type refFlag struct {
	Name    string
	Type    string // as -h prints it: string, int, duration, float, value; bool for a switch
	Env     string // the variable the flag defaults to, if any
	Default string // the built-in default, as the flag prints it
	Help    string
}

func cmdConfigReference(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("genpipe config-reference", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the reference to this file instead of stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Every default reads its variable: the reference shows the built-in
	// defaults, whatever this shell has set.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "GENPIPE_") {
			os.Unsetenv(name)
		}
	}
	cmds, err := flagReference(ctx)
	if err != nil {
		return err
	}
	doc := renderReference(cmds)
	if *out == "" {
		_, err = stdout.Write(doc)
		return err
	}
	return os.WriteFile(*out, doc, 0o644)
}

// flagReference returns every command's flags, in the order of the usage
// text. Defaults are read from GENPIPE_* variables: call it with none set.
func flagReference(ctx context.Context) ([]refCommand, error) {
	summaries, order := usageSummaries()
	table := commands()
	delete(table, "config-reference") // for maintainers, not in the usage either
	for name := range table {
		if !slices.Contains(order, name) {
			order = append(order, name) // not in the usage text yet: still documented
		}
	}
	var cmds []refCommand
	for _, name := range order {
		words := [][]string{nil}
		if subs, ok := subcommands[name]; ok {
			words = nil
			for _, s := range subs {
				words = append(words, []string{s})
			}
		}
		for _, w := range words {
			flags, err := commandFlags(ctx, table[name], w)
			if err != nil {
				return nil, fmt.Errorf("genpipe %s: %w", strings.Join(append([]string{name}, w...), " "), err)
			}
			cmds = append(cmds, refCommand{Name: strings.Join(append([]string{name}, w...), " "),
				Summary: summaries[name], Flags: flags})
		}
	}
	return cmds, nil
}

// usageSummaries reads each command's one-line summary, and the order in
// which the usage text lists them.
func usageSummaries() (map[string]string, []string) {
	summaries := map[string]string{}
	var order []string
	for _, line := range strings.Split(usage, "\n") {
		rest, ok := strings.CutPrefix(line, "  genpipe ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		if i := strings.Index(rest, "   "); i >= 0 {
			summaries[name] = strings.TrimSpace(rest[i:])
		}
		order = append(order, name)
	}
	return summaries, order
}

// commandFlags runs a command with -h and parses the flags it prints.
func commandFlags(ctx context.Context, cmd command, words []string) ([]refFlag, error) {
	var help bytes.Buffer
	err := cmd(ctx, append(slices.Clone(words), "-h"), io.Discard, &help)
	if !errors.Is(err, flag.ErrHelp) {
		return nil, fmt.Errorf("-h gave %v, want its flags (a command with subcommands belongs in subcommands)", err)
	}
	flags, err := parseDefaults(help.String())
	if err == nil && len(flags) == 0 {
		err = errors.New("-h printed no flags")
	}
	return flags, err
}

// The lines of flag.PrintDefaults: "  -name type" and then the help on
// lines that start with four spaces and a tab (a one-letter switch has its
// help on its own line, after a tab).
var (
	flagLine     = regexp.MustCompile(`^  -([^\s=]+)(?: (\S+))?(?:\t(.*))?$`)
	helpLine     = regexp.MustCompile(`^    \t(.*)$`)
	envSuffix    = regexp.MustCompile(`(?s)^(.*) \(\$([A-Z][A-Z0-9_]*)\)((?: \(default .*\))?)$`)
	defaultTrail = regexp.MustCompile(`(?s)^(.*) \(default (.*)\)$`)
)

// parseDefaults parses what flag.PrintDefaults printed, after any text of
// the command's own usage: the flags are the last unbroken run of flag and
// help lines.
func parseDefaults(text string) ([]refFlag, error) {
	var flags []refFlag
	var help []string // of the last flag
	finish := func() error {
		if len(flags) == 0 {
			return nil
		}
		f := &flags[len(flags)-1]
		if err := f.setHelp(strings.Join(help, "\n")); err != nil {
			return fmt.Errorf("flag -%s: %w", f.Name, err)
		}
		help = nil
		return nil
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if m := helpLine.FindStringSubmatch(line); m != nil && len(flags) > 0 {
			help = append(help, m[1])
			continue
		}
		if err := finish(); err != nil {
			return nil, err
		}
		m := flagLine.FindStringSubmatch(line)
		if m == nil {
			flags = nil // usage text before the flags
			continue
		}
		flags = append(flags, refFlag{Name: m[1], Type: m[2]})
		if m[3] != "" {
			help = append(help, m[3])
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return flags, nil
}

// setHelp splits a flag's printed help into its text, the variable it reads
// and its default, which PrintDefaults appends in that order.
func (f *refFlag) setHelp(text string) error {
	if f.Type == "" {
		f.Type = "bool"
	}
	def := ""
	if m := envSuffix.FindStringSubmatch(text); m != nil {
		text, f.Env, def = m[1], m[2], m[3]
		if def != "" {
			m := defaultTrail.FindStringSubmatch(def)
			if m == nil || !f.validDefault(m[2]) {
				return fmt.Errorf("cannot read the default in %q", def)
			}
			def = m[2]
		}
	} else if m := defaultTrail.FindStringSubmatch(text); m != nil && f.validDefault(m[2]) {
		text, def = m[1], m[2]
	}
	// A default is printed only when it is not the type's zero value.
	switch {
	case def != "" && f.Type == "string":
		def, _ = strconv.Unquote(def)
	case def == "":
		def = map[string]string{"int": "0", "uint": "0", "int64": "0", "uint64": "0", "float": "0",
			"duration": "0s", "bool": "false"}[f.Type]
	}
	f.Default, f.Help = def, strings.Join(strings.Fields(text), " ")
	return nil
}

// validDefault reports whether s reads as a printed default of the flag's
// type, to tell a default from help text that ends in "(default ...)".
func (f *refFlag) validDefault(s string) bool {
	var err error
	switch f.Type {
	case "string":
		_, err = strconv.Unquote(s)
	case "int", "int64":
		_, err = strconv.ParseInt(s, 10, 64)
	case "uint", "uint64":
		_, err = strconv.ParseUint(s, 10, 64)
	case "float":
		_, err = strconv.ParseFloat(s, 64)
	case "duration":
		_, err = time.ParseDuration(s)
	case "bool":
		_, err = strconv.ParseBool(s)
	}
	return err == nil
}

// renderReference writes the reference as Markdown.
func renderReference(cmds []refCommand) []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated from the code by "go generate ./cmd/genpipe"; do not edit.
     TestConfigReferenceUpToDate fails when this file is out of date. -->

Every setting of every genpipe command is a flag, and most flags also read a ` + "`GENPIPE_*`" + `
environment variable, named below. A flag on the command line wins over its variable, and the variable
over the default. A variable that does not parse as the flag's type (a number, a duration such as
` + "`30s`" + `, a boolean) is ignored and the default applies. Prefer variables for secrets: command lines
show in ` + "`ps`" + `. ` + "`genpipe COMMAND -h`" + ` prints the same list for one command. Operating the
system is described in [operations.md](operations.md).

## Environment variables

| variable | read by |
|---|---|
`)
	byEnv := map[string][]string{}
	for _, c := range cmds {
		for _, f := range c.Flags {
			if f.Env != "" {
				byEnv[f.Env] = append(byEnv[f.Env], fmt.Sprintf("%s `-%s`", c.Name, f.Name))
			}
		}
	}
	for _, e := range otherEnv {
		byEnv[e.Env] = append(byEnv[e.Env], e.Command+" (see below)")
	}
	for _, env := range slices.Sorted(maps.Keys(byEnv)) {
		readers := strings.Join(byEnv[env], ", ")
		if len(byEnv[env]) == len(cmds) && sameFlag(byEnv[env]) {
			_, name, _ := strings.Cut(byEnv[env][0], " `")
			readers = "every command `" + name
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", env, readers)
	}
	for _, c := range cmds {
		fmt.Fprintf(&b, "\n## genpipe %s\n\n", c.Name)
		if c.Summary != "" {
			fmt.Fprintf(&b, "%s.\n\n", upperFirst(c.Summary))
		}
		b.WriteString("| flag | variable | type | default | description |\n|---|---|---|---|---|\n")
		for _, f := range c.Flags {
			env := ""
			if f.Env != "" {
				env = "`" + f.Env + "`"
			}
			def := ""
			if f.Default != "" {
				def = "`" + f.Default + "`"
			}
			fmt.Fprintf(&b, "| `-%s` | %s | %s | %s | %s |\n", f.Name, env, f.Type, def, cell(f.Help))
		}
		for _, e := range otherEnv {
			if e.Command == c.Name {
				fmt.Fprintf(&b, "\nAlso read: `%s`, %s.\n", e.Env, e.Help)
			}
		}
	}
	return b.Bytes()
}

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sameFlag reports whether readers ("cmd `-flag`") all name the same flag.
func sameFlag(readers []string) bool {
	_, first, _ := strings.Cut(readers[0], " `")
	for _, r := range readers {
		if _, name, _ := strings.Cut(r, " `"); name != first {
			return false
		}
	}
	return true
}
