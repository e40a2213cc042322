package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// flags is a command's flag set. Every flag may read a GENPIPE_* variable
// and carry checks, so that every command reads its settings the same way:
//
//   - a flag's default is a constant of the package that uses the setting
//     (engine.DefaultCapacity, api.DefaultUploadTTL, ...): one source;
//   - the variable, when set, replaces the default, and the command line
//     replaces both;
//   - a value that does not parse, or that a check refuses, stops the
//     command before it starts, with an error that names the flag (and the
//     variable, when the value came from there) and says what is wanted.
//
// -h prints the built-in defaults, never a variable's value, so help output
// and the generated reference never show a secret.
type flags struct {
	*flag.FlagSet
	env       map[string]string // flag name → its variable
	sensitive map[string]bool   // flags whose value errors must not quote (secrets, URLs with passwords)
	checks    []func() error    // run after parsing, in registration order
}

// newFlags returns the flag set of `genpipe name`, printing to stderr.
func newFlags(name string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet("genpipe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flags{FlagSet: fs, env: map[string]string{}, sensitive: map[string]bool{}}
}

// check is a constraint on a flag's value: nil when v is fine, else what is
// wanted ("want at least 1").
type check[T any] func(v T) error

// atLeast wants v ≥ least.
func atLeast[T cmp.Ordered](least T) check[T] {
	return func(v T) error {
		if v < least {
			return fmt.Errorf("want at least %v", least)
		}
		return nil
	}
}

// between wants lo ≤ v ≤ hi.
func between[T cmp.Ordered](lo, hi T) check[T] {
	return func(v T) error {
		if v < lo || v > hi {
			return fmt.Errorf("want %v to %v", lo, hi)
		}
		return nil
	}
}

// positive wants a duration above zero.
func positive(d time.Duration) error {
	if d <= 0 {
		return errors.New("want more than 0")
	}
	return nil
}

// nonEmpty wants a value.
func nonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("want a value")
	}
	return nil
}

// oneOf wants one of values.
func oneOf(values ...string) check[string] {
	return func(s string) error {
		if !slices.Contains(values, s) {
			return fmt.Errorf("want %s", strings.Join(values, ", "))
		}
		return nil
	}
}

// httpURL wants an http or https URL with a host.
func httpURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// or https:// URL")
	}
	return nil
}

// emptyOr wants nothing, or what check wants.
func emptyOr(check check[string]) check[string] {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return check(s)
	}
}

// String defines a string flag.
func (f *flags) String(p *string, name, env, def, usage string, checks ...check[string]) {
	f.StringVar(p, name, def, withEnv(usage, env))
	bind(f, name, env, p, checks)
}

// Secret defines a string flag without a default, whose variable is the
// place to set it (flags show in ps). Errors never quote its value.
func (f *flags) Secret(p *string, name, env, usage string, checks ...check[string]) {
	f.String(p, name, env, "", usage, checks...)
	f.sensitive[name] = true
}

// SensitiveString defines a string flag whose value may hold a secret (a
// URL with a password): errors never quote it.
func (f *flags) SensitiveString(p *string, name, env, def, usage string, checks ...check[string]) {
	f.String(p, name, env, def, usage, checks...)
	f.sensitive[name] = true
}

// invalid says that flag name's value v (from $env, if not "") is wrong.
func (f *flags) invalid(name, env, v string, err error) error {
	what := fmt.Sprintf("flag -%s", name)
	if env != "" {
		what = fmt.Sprintf("$%s (flag -%s)", env, name)
	}
	if f.sensitive[name] {
		return fmt.Errorf("invalid value for %s: %w", what, err)
	}
	return fmt.Errorf("invalid value %q for %s: %w", v, what, err)
}

// Int defines an int flag.
func (f *flags) Int(p *int, name, env string, def int, usage string, checks ...check[int]) {
	f.IntVar(p, name, def, withEnv(usage, env))
	bind(f, name, env, p, checks)
}

// Int64 defines an int64 flag.
func (f *flags) Int64(p *int64, name, env string, def int64, usage string, checks ...check[int64]) {
	f.Int64Var(p, name, def, withEnv(usage, env))
	bind(f, name, env, p, checks)
}

// Duration defines a duration flag.
func (f *flags) Duration(p *time.Duration, name, env string, def time.Duration, usage string, checks ...check[time.Duration]) {
	f.DurationVar(p, name, def, withEnv(usage, env))
	bind(f, name, env, p, checks)
}

// Float defines a float flag.
func (f *flags) Float(p *float64, name, env string, def float64, usage string, checks ...check[float64]) {
	f.Float64Var(p, name, def, withEnv(usage, env))
	bind(f, name, env, p, checks)
}

// Bool defines a bool flag.
func (f *flags) Bool(p *bool, name, env string, def bool, usage string) {
	f.BoolVar(p, name, def, withEnv(usage, env))
	bind[bool](f, name, env, p, nil)
}

// Value defines a flag of its own type, which parses and checks itself.
func (f *flags) Value(v flag.Value, name, env, usage string) {
	f.Var(v, name, withEnv(usage, env))
	bind[flag.Value](f, name, env, &v, nil)
}

// bind records the variable of flag name, and checks on *p to run after
// parsing.
func bind[T any](f *flags, name, env string, p *T, checks []check[T]) {
	if env != "" {
		f.env[name] = env
	}
	for _, c := range checks {
		f.checks = append(f.checks, func() error {
			if err := c(*p); err != nil {
				return f.invalid(name, "", fmt.Sprint(*p), err)
			}
			return nil
		})
	}
}

// Check adds a check that spans several flags (or that runs after the
// flags' own ones): its error should name the flags it is about.
func (f *flags) Check(c func() error) { f.checks = append(f.checks, c) }

// Parse sets each flag from its variable, then from args, then runs the
// checks. Any failure is an error naming the flag: the command stops
// before it starts anything.
func (f *flags) Parse(args []string) error {
	var errs []error
	f.VisitAll(func(fl *flag.Flag) {
		env, ok := f.env[fl.Name]
		if !ok {
			return
		}
		v, set := os.LookupEnv(env)
		if !set {
			return
		}
		if err := fl.Value.Set(v); err != nil {
			errs = append(errs, f.invalid(fl.Name, env, v, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	for _, c := range f.checks {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// withEnv appends the variable's name to a flag's usage, as -h and the
// configuration reference show it.
func withEnv(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " ($" + env + ")"
}

// optionalBool is a bool flag that can also be left to the code's choice
// ("auto", its default). -name alone means true.
type optionalBool struct{ set, v bool }

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return "auto"
	}
	return strconv.FormatBool(b.v)
}

func (b *optionalBool) Set(s string) error {
	if s == "auto" {
		b.set = false
		return nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true, false or auto")
	}
	b.set, b.v = true, v
	return nil
}

func (b *optionalBool) IsBoolFlag() bool { return true }

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
