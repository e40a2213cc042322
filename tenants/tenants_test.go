package tenants_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/tenants"
)

// hash is what an operator writes in the file for key.
func hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func sum(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }

const yamlFile = `
# two tenants
tenants:
  - name: acme
    weight: 3
    maxPriority: high
    keySha256:
      - %A
      - %B
  - name: batch.jobs
    keySha256: [%C]
`

func fill(s string) string {
	return strings.NewReplacer("%A", hash("key-a"), "%B", strings.ToUpper(hash("key-b")), "%C", hash("key-c")).Replace(s)
}

func TestParseYAMLAndJSON(t *testing.T) {
	json := `{"tenants": [
		{"name": "acme", "weight": 3, "maxPriority": "high", "keySha256": ["%A", "%B"]},
		{"name": "batch.jobs", "keySha256": ["%C"]}
	]}`
	want := []genpipe.Tenant{
		{Name: "acme", Weight: 3, MaxPriority: genpipe.PriorityHigh},
		{Name: "batch.jobs", Weight: genpipe.DefaultWeight, MaxPriority: genpipe.DefaultPriority},
	}
	wantKeys := []tenants.Key{{SHA256: sum("key-a"), Tenant: "acme"}, {SHA256: sum("key-b"), Tenant: "acme"},
		{SHA256: sum("key-c"), Tenant: "batch.jobs"}}
	for name, text := range map[string]string{"tenants.yaml": yamlFile, "tenants.json": json} {
		set, err := tenants.Parse(name, []byte(fill(text)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if set.Source != name || !reflect.DeepEqual(set.Tenants, want) || !slices.Equal(set.Keys, wantKeys) {
			t.Errorf("%s: %+v; want tenants %+v, keys %+v", name, set, want, wantKeys)
		}
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(path, []byte(fill(yamlFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := tenants.Load(path)
	if err != nil || len(set.Tenants) != 2 || set.Source != path {
		t.Fatalf("Load = %+v, %v", set, err)
	}
	if _, err := tenants.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file: %v; want an error naming it", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#", tenants.MaxFileSize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.Load(big); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("Load of a file over MaxFileSize: %v", err)
	}
}

// TestParseErrors: every mistake is refused with an error that names the
// file, the tenant and the field.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"empty", "", []string{"tenants.yaml: is empty"}},
		{"no tenants", "tenants: []", []string{"lists no tenants"}},
		{"no keys", "tenants: [{name: a}]", []string{"lists no API key"}},
		{"unknown field", "tenants: [{name: a, maxPriorty: high, keySha256: [%A]}]", []string{"line 1: field maxPriorty unknown: a tenant has name, weight, maxPriority and keySha256"}},
		{"unknown top field", "tenant: []", []string{"field tenant unknown: the file has tenants"}},
		{"unknown JSON field", `{"tenants": [{"name": "a", "weigth": 2, "keySha256": ["%A"]}]}`, []string{"JSON", `unknown field "weigth"`}},
		{"JSON syntax", "{\"tenants\": [\n{\"name\": \"a\",}]}", []string{"JSON: line 2"}},
		{"JSON trailing", `{"tenants": [{"name": "a", "keySha256": ["%A"]}]} {}`, []string{"trailing data"}},
		{"two YAML documents", "tenants: [{name: a, keySha256: [%A]}]\n---\ntenants: []", []string{"more than one document"}},
		{"duplicate YAML key", "tenants: [{name: a, name: b, keySha256: [%A]}]", []string{"already defined"}},
		{"weight type", "tenants: [{name: a, weight: heavy, keySha256: [%A]}]", []string{"line 1", "heavy"}},
		{"no name", "tenants: [{keySha256: [%A]}]", []string{"tenants[0]: name: required"}},
		{"bad name", "tenants: [{name: 'a b', keySha256: [%A]}]", []string{`tenant "a b" (tenants[0]): name: "a b": want only`}},
		{"long name", "tenants: [{name: " + strings.Repeat("n", 65) + ", keySha256: [%A]}]", []string{"name: 65 bytes: want at most 64"}},
		{"duplicate name", "tenants: [{name: a, keySha256: [%A]}, {name: a, keySha256: [%B]}]",
			[]string{`tenant "a" (tenants[1]): name: also the name of tenants[0]`}},
		{"weight 0", "tenants: [{name: a, weight: 0, keySha256: [%A]}]", []string{`tenant "a" (tenants[0]): weight 0: want 1 to 1000`}},
		{"weight over", "tenants: [{name: a, weight: 1001, keySha256: [%A]}]", []string{"weight 1001: want 1 to 1000"}},
		{"weight negative", "tenants: [{name: a, weight: -1, keySha256: [%A]}]", []string{"weight -1"}},
		{"priority", "tenants: [{name: a, maxPriority: urgent, keySha256: [%A]}]", []string{`tenant "a" (tenants[0]): maxPriority "urgent": want`}},
		{"short hash", "tenants: [{name: a, keySha256: [my-secret-key]}]", []string{`tenant "a" (tenants[0]): keySha256[0]: 13 characters`}},
		{"not hex", "tenants: [{name: a, keySha256: [" + strings.Repeat("g", 64) + "]}]", []string{"keySha256[0]: not hex"}},
		{"key twice in a tenant", "tenants: [{name: a, keySha256: [%A, %A]}]", []string{`keySha256[1]: this key is also listed for tenant "a" (tenants[0])`}},
		{"key in two tenants", "tenants: [{name: a, keySha256: [%A]}, {name: b, keySha256: [%B, %A]}]",
			[]string{`tenant "b" (tenants[1]): keySha256[1]: this key is also listed for tenant "a" (tenants[0])`}},
		{"several at once", "tenants: [{name: a, weight: 0, maxPriority: x, keySha256: [%A]}]", []string{"weight 0", `maxPriority "x"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := tenants.Parse("tenants.yaml", []byte(fill(c.text)))
			if err == nil {
				t.Fatalf("Parse(%q) = nil error; want one saying %q", c.text, c.want)
			}
			msg := err.Error()
			for _, want := range append(c.want, "tenants file tenants.yaml") {
				if !strings.Contains(msg, want) {
					t.Errorf("Parse(%q) = %q; want it to say %q", c.text, msg, want)
				}
			}
			if strings.Contains(msg, "my-secret-key") {
				t.Errorf("the error repeats what may be a plain key: %q", msg)
			}
		})
	}
}

func TestFromKeys(t *testing.T) {
	set := tenants.FromKeys([]string{"key-a", "", "key-b", "key-a"})
	nameA := "key-" + hash("key-a")[:12]
	want := []genpipe.Tenant{{Name: nameA, Weight: 1, MaxPriority: genpipe.PriorityNormal},
		{Name: "key-" + hash("key-b")[:12], Weight: 1, MaxPriority: genpipe.PriorityNormal}}
	if !reflect.DeepEqual(set.Tenants, want) || len(set.Keys) != 2 || set.Keys[0] != (tenants.Key{SHA256: sum("key-a"), Tenant: nameA}) {
		t.Fatalf("FromKeys = %+v; want tenants %+v", set, want)
	}
	for _, tenant := range set.Tenants {
		if err := tenant.Validate(); err != nil {
			t.Errorf("FromKeys tenant: %v", err)
		}
	}
	if again := tenants.FromKeys([]string{"key-a"}); again.Tenants[0].Name != nameA {
		t.Errorf("a key's tenant is %s, then %s; want one name", nameA, again.Tenants[0].Name)
	}
}

func TestMerge(t *testing.T) {
	file, err := tenants.Parse("tenants.yaml", []byte(fill(yamlFile)))
	if err != nil {
		t.Fatal(err)
	}
	merged, err := tenants.Merge(tenants.FromKeys([]string{"key-d"}), file)
	if err != nil || len(merged.Tenants) != 3 || len(merged.Keys) != 4 {
		t.Fatalf("Merge = %+v, %v; want 3 tenants with 4 keys", merged, err)
	}
	if _, err := tenants.Merge(tenants.FromKeys([]string{"key-b"}), file); err == nil ||
		!strings.Contains(err.Error(), `is also tenant "key-`) || !strings.Contains(err.Error(), "-api-keys") ||
		!strings.Contains(err.Error(), "tenants.yaml") {
		t.Errorf("Merge of a key in both: %v; want an error naming both sources", err)
	}
	if _, err := tenants.Merge(file, file); err == nil || !strings.Contains(err.Error(), `tenant "acme" is in both`) {
		t.Errorf("Merge of one tenant twice: %v", err)
	}
}

func TestChanges(t *testing.T) {
	old, err := tenants.Parse("t.yaml", []byte(fill(yamlFile)))
	if err != nil {
		t.Fatal(err)
	}
	if c := old.Changes(old); len(c) != 0 {
		t.Errorf("Changes of the same set = %q; want none", c)
	}
	changed := fill(`tenants:
  - name: acme
    weight: 5
    keySha256: [%A]
  - name: new
    keySha256: [%C]
`)
	now, err := tenants.Parse("t.yaml", []byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tenant acme: weight 3 → 5, maxPriority high → normal, 0 key(s) added, 1 removed",
		"tenant batch.jobs removed, with its 1 key(s)",
		"tenant new added: weight 1, maxPriority normal, 1 key(s)",
	}
	if got := now.Changes(old); !slices.Equal(got, want) {
		t.Errorf("Changes =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, line := range now.Changes(old) {
		if strings.Contains(line, hash("key-a")) {
			t.Errorf("Changes shows a key's hash: %s", line)
		}
	}
}
