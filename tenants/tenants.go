// Package tenants reads who the API keys belong to: the tenants file
// (genpipe's -tenants, JSON or YAML) and the plain -api-keys, each key of
// which is a tenant of its own. A Set is what both give the API: the
// tenants, each with its weight and the highest priority it may ask for,
// and the SHA-256 of each API key with the tenant it belongs to.
//
// The file stores keys only as their SHA-256, in hex, so that reading it
// gives no key away. Make one with
//
//	printf %s "$KEY" | sha256sum
//
// A file looks like this (JSON, the same fields, works as well):
//
//	tenants:
//	  - name: acme
//	    weight: 3           # 1 to 1000; 1 when left out
//	    maxPriority: high   # high, normal or low; normal when left out
//	    keySha256:
//	      - 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	    budgets:            # per UTC day and stage: calls or aiSeconds
//	      - {stage: generate, calls: 1000}
//	      - {stage: generate, aiSeconds: 3600}
//	  - name: batch
//	    maxPriority: low
//	    keySha256: [60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752]
package tenants

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/genpipe/genpipe"
)

// MaxFileSize bounds the tenants file, in bytes: thousands of tenants fit.
const MaxFileSize = 1 << 20

// FromKeysSource is the Source of the Set that FromKeys returns, as the
// errors of Merge name it.
const FromKeysSource = "-api-keys"

// Set is a valid configuration of tenants: every tenant's name is unique,
// its Weight and MaxPriority are filled in, and every key belongs to one
// of the tenants and to no other.
type Set struct {
	// Source says where the set was read, for errors and logs: the file's
	// path, or FromKeysSource.
	Source  string
	Tenants []genpipe.Tenant
	Keys    []Key
}

// Key is an API key, by its SHA-256, and the name of its tenant.
type Key struct {
	SHA256 [sha256.Size]byte
	Tenant string
}

// Tenant returns the tenant of that name.
func (s Set) Tenant(name string) (genpipe.Tenant, bool) {
	i := slices.IndexFunc(s.Tenants, func(t genpipe.Tenant) bool { return t.Name == name })
	if i < 0 {
		return genpipe.Tenant{}, false
	}
	return s.Tenants[i], true
}

// file is the tenants file as written.
type file struct {
	Tenants []entry `json:"tenants" yaml:"tenants"`
}

type entry struct {
	Name        string           `json:"name" yaml:"name"`
	Weight      *int             `json:"weight" yaml:"weight"` // nil: genpipe.DefaultWeight; 0 is refused
	MaxPriority string           `json:"maxPriority" yaml:"maxPriority"`
	KeySHA256   []string         `json:"keySha256" yaml:"keySha256"`
	Budgets     []genpipe.Budget `json:"budgets" yaml:"budgets"` // per UTC day; see genpipe.Budget
}

// Load reads and checks the tenants file at path; see Parse.
func Load(path string) (Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return Set{}, fmt.Errorf("tenants file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Set{}, fmt.Errorf("tenants file %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return Set{}, fmt.Errorf("tenants file %s: over %d bytes", path, MaxFileSize)
	}
	return Parse(path, data)
}

// Parse reads a tenants file, named name in its errors: JSON when it
// starts with "{", YAML otherwise. Unknown fields are refused, so that a
// misspelt "maxPriorty" is an error rather than a tenant quietly left at
// normal. Every problem is reported at once, each naming the tenant and
// the field. A file must list at least one key: a tenants file turns API
// keys on, and one that listed none would leave the API open.
func Parse(name string, data []byte) (Set, error) {
	var f file
	if err := decode(data, &f); err != nil {
		return Set{}, fmt.Errorf("tenants file %s: %w", name, err)
	}
	set, errs := f.set(name)
	if len(set.Keys) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("lists no API key (keySha256): without keys the API would be open; "+
			"leave -tenants unset for an open API"))
	}
	if len(errs) > 0 {
		for i, err := range errs {
			errs[i] = fmt.Errorf("tenants file %s: %w", name, err)
		}
		return Set{}, errors.Join(errs...)
	}
	return set, nil
}

// decode reads JSON or YAML strictly into f: unknown fields, duplicate
// keys, a second document or trailing data are errors.
func decode(data []byte, f *file) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return errors.New("is empty: want a list of tenants under \"tenants\"")
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(f); err != nil {
			return fmt.Errorf("JSON: %w", jsonPosition(data, err))
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return errors.New("JSON: trailing data after the object")
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		return fmt.Errorf("YAML: %s", yamlMessage(err))
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return errors.New("YAML: more than one document; want one")
	}
	return nil
}

// jsonPosition adds the line of a JSON syntax or type error.
func jsonPosition(data []byte, err error) error {
	var offset int64 = -1
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 || offset > int64(len(data)) {
		return err
	}
	return fmt.Errorf("line %d: %w", bytes.Count(data[:offset], []byte("\n"))+1, err)
}

// yamlMessage is a YAML error without the Go type names it mentions.
func yamlMessage(err error) string {
	return strings.NewReplacer("yaml: ", "",
		"not found in type tenants.entry", "unknown: a tenant has name, weight, maxPriority and keySha256, and may have budgets",
		"not found in type genpipe.Budget", "unknown: a budget has stage and one of calls or aiSeconds",
		"not found in type tenants.file", "unknown: the file has tenants",
		"into tenants.file", "into a tenants file", "into tenants.entry", "into a tenant").Replace(err.Error())
}

// set checks every entry and returns the valid tenants and keys, with a
// problem for each thing wrong.
func (f file) set(source string) (Set, []error) {
	set := Set{Source: source}
	var errs []error
	if len(f.Tenants) == 0 {
		return set, []error{errors.New("lists no tenants: want a list under \"tenants\"")}
	}
	names := map[string]int{}    // name → index in f.Tenants
	owners := map[[32]byte]int{} // key → index in f.Tenants
	for i, e := range f.Tenants {
		who := fmt.Sprintf("tenants[%d]", i)
		if e.Name != "" {
			who = fmt.Sprintf("tenant %q (tenants[%d])", e.Name, i)
		}
		t, problems := e.tenant()
		if j, dup := names[e.Name]; dup && e.Name != "" {
			problems = append(problems, fmt.Sprintf("name: also the name of tenants[%d]", j))
		}
		names[e.Name] = i
		for k, h := range e.KeySHA256 {
			sum, err := parseSHA256(h)
			if err != nil {
				problems = append(problems, fmt.Sprintf("keySha256[%d]: %v", k, err))
				continue
			}
			if j, dup := owners[sum]; dup {
				problems = append(problems, fmt.Sprintf("keySha256[%d]: this key is also listed for %s", k, tenantRef(f.Tenants, j)))
				continue
			}
			owners[sum] = i
			set.Keys = append(set.Keys, Key{SHA256: sum, Tenant: t.Name})
		}
		for _, p := range problems {
			errs = append(errs, fmt.Errorf("%s: %s", who, p))
		}
		if len(problems) == 0 {
			set.Tenants = append(set.Tenants, t)
		}
	}
	return set, errs
}

// tenantRef names tenants[i] in an error.
func tenantRef(all []entry, i int) string {
	if all[i].Name == "" {
		return fmt.Sprintf("tenants[%d]", i)
	}
	return fmt.Sprintf("tenant %q (tenants[%d])", all[i].Name, i)
}

// tenant returns the tenant e describes, with its defaults, and what is
// wrong with it.
func (e entry) tenant() (genpipe.Tenant, []string) {
	t := genpipe.Tenant{Name: e.Name, Weight: genpipe.DefaultWeight, MaxPriority: genpipe.DefaultPriority}
	var problems []string
	if err := checkName(e.Name); err != nil {
		problems = append(problems, "name: "+err.Error())
	}
	if e.Weight != nil {
		t.Weight = *e.Weight
		if t.Weight < 1 || t.Weight > genpipe.MaxWeight {
			problems = append(problems, fmt.Sprintf("weight %d: want 1 to %d (left out: %d)", t.Weight, genpipe.MaxWeight, genpipe.DefaultWeight))
		}
	}
	if e.MaxPriority != "" {
		t.MaxPriority = genpipe.Priority(e.MaxPriority)
		if !t.MaxPriority.Valid() {
			problems = append(problems, fmt.Sprintf("maxPriority %q: want %q, %q or %q (left out: %q)", e.MaxPriority,
				genpipe.PriorityHigh, genpipe.PriorityNormal, genpipe.PriorityLow, genpipe.DefaultPriority))
		}
	}
	for i, b := range e.Budgets {
		if err := b.Validate(); err != nil {
			problems = append(problems, fmt.Sprintf("budgets[%d]: %v", i, err))
		}
	}
	t.Budgets = e.Budgets
	return t, problems
}

// checkName wants a name that is safe in every place a tenant's name goes:
// events, logs, metric labels, URLs. Letters, digits, '.', '_' and '-',
// starting with a letter or digit.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case len(name) > genpipe.MaxTenantLen:
		return fmt.Errorf("%d bytes: want at most %d", len(name), genpipe.MaxTenantLen)
	case !isAlnum(rune(name[0])):
		return fmt.Errorf("%q: want a letter or digit first", name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !isAlnum(r) && r != '.' && r != '_' && r != '-' }); i >= 0 {
		return fmt.Errorf("%q: want only ASCII letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// parseSHA256 reads a key's SHA-256 in hex, either case. It never repeats
// what it was given: a key pasted by mistake must not reach the logs.
func parseSHA256(h string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(h) != 2*sha256.Size {
		return sum, fmt.Errorf("%d characters: want the key's SHA-256 as 64 hex digits (printf %%s KEY | sha256sum), never the key itself", len(h))
	}
	if _, err := hex.Decode(sum[:], []byte(h)); err != nil {
		return sum, errors.New("not hex: want the key's SHA-256 as 64 hex digits (printf %s KEY | sha256sum)")
	}
	return sum, nil
}

// FromKeys returns plain API keys as a Set: each key a tenant of its own,
// of weight genpipe.DefaultWeight and ceiling genpipe.DefaultPriority,
// named by KeyTenant. Empty and repeated keys are skipped.
func FromKeys(keys []string) Set {
	set := Set{Source: FromKeysSource}
	seen := map[[sha256.Size]byte]bool{}
	for _, key := range keys {
		if key == "" {
			continue
		}
		sum := sha256.Sum256([]byte(key))
		if seen[sum] {
			continue
		}
		seen[sum] = true
		name := KeyTenant(sum)
		set.Tenants = append(set.Tenants, genpipe.Tenant{Name: name, Weight: genpipe.DefaultWeight, MaxPriority: genpipe.DefaultPriority})
		set.Keys = append(set.Keys, Key{SHA256: sum, Tenant: name})
	}
	return set
}

// KeyTenant names the tenant of a plain API key by its SHA-256: "key-"
// and the first 12 hex digits of the hash. The name is the same at every
// start and tells nothing of the key.
func KeyTenant(sum [sha256.Size]byte) string {
	return "key-" + hex.EncodeToString(sum[:6])
}

// Merge returns the tenants and keys of every set as one. A tenant name or
// a key in two sets is an error naming both sources.
func Merge(sets ...Set) (Set, error) {
	var out Set
	var sources []string
	from := map[string]string{}   // tenant → source
	keys := map[[32]byte]string{} // key → tenant
	var errs []error
	for _, s := range sets {
		if s.Source != "" {
			sources = append(sources, s.Source)
		}
		for _, t := range s.Tenants {
			if src, dup := from[t.Name]; dup {
				errs = append(errs, fmt.Errorf("tenant %q is in both %s and %s", t.Name, src, s.Source))
				continue
			}
			from[t.Name] = s.Source
			out.Tenants = append(out.Tenants, t)
		}
		for _, k := range s.Keys {
			if other, dup := keys[k.SHA256]; dup {
				errs = append(errs, fmt.Errorf("an API key of tenant %q (%s) is also tenant %q's (%s)", k.Tenant, s.Source, other, from[other]))
				continue
			}
			keys[k.SHA256] = k.Tenant
			out.Keys = append(out.Keys, k)
		}
	}
	out.Source = strings.Join(sources, " and ")
	if err := errors.Join(errs...); err != nil {
		return Set{}, err
	}
	return out, nil
}

// Changes describes what changed from old to s, one line a tenant, in the
// order of names, for the log of a reload; none when nothing did. Keys
// are counted, never shown.
func (s Set) Changes(old Set) []string {
	was, is := old.byName(), s.byName()
	wasKeys, isKeys := old.keysByTenant(), s.keysByTenant()
	var names []string
	for _, t := range append(slices.Clone(old.Tenants), s.Tenants...) {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var lines []string
	for _, name := range names {
		before, had := was[name]
		after, has := is[name]
		added, removed := keyDiff(wasKeys[name], isKeys[name])
		switch {
		case !had:
			lines = append(lines, fmt.Sprintf("tenant %s added: weight %d, maxPriority %s, %d key(s)", name, after.Weight, after.MaxPriority, added))
		case !has:
			lines = append(lines, fmt.Sprintf("tenant %s removed, with its %d key(s)", name, removed))
		default:
			var what []string
			if before.Weight != after.Weight {
				what = append(what, fmt.Sprintf("weight %d → %d", before.Weight, after.Weight))
			}
			if before.MaxPriority != after.MaxPriority {
				what = append(what, fmt.Sprintf("maxPriority %s → %s", before.MaxPriority, after.MaxPriority))
			}
			if b, a := fmt.Sprint(before.Budgets), fmt.Sprint(after.Budgets); b != a {
				what = append(what, fmt.Sprintf("budgets %s → %s", b, a))
			}
			if added > 0 || removed > 0 {
				what = append(what, fmt.Sprintf("%d key(s) added, %d removed", added, removed))
			}
			if len(what) > 0 {
				lines = append(lines, fmt.Sprintf("tenant %s: %s", name, strings.Join(what, ", ")))
			}
		}
	}
	return lines
}

func (s Set) byName() map[string]genpipe.Tenant {
	m := make(map[string]genpipe.Tenant, len(s.Tenants))
	for _, t := range s.Tenants {
		m[t.Name] = t
	}
	return m
}

func (s Set) keysByTenant() map[string]map[[32]byte]bool {
	m := map[string]map[[32]byte]bool{}
	for _, k := range s.Keys {
		if m[k.Tenant] == nil {
			m[k.Tenant] = map[[32]byte]bool{}
		}
		m[k.Tenant][k.SHA256] = true
	}
	return m
}

// keyDiff counts the keys in b and not a, and in a and not b.
func keyDiff(a, b map[[32]byte]bool) (added, removed int) {
	for k := range b {
		if !a[k] {
			added++
		}
	}
	for k := range a {
		if !b[k] {
			removed++
		}
	}
	return added, removed
}
