package tenants_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/tenants"
)

func TestParseBudgets(t *testing.T) {
	yaml := `
tenants:
  - name: acme
    keySha256: [%A]
    budgets:
      - {stage: generate, calls: 1000}
      - {stage: generate, aiSeconds: 3600}
      - stage: check
        calls: 5
`
	json := `{"tenants": [{"name": "acme", "keySha256": ["%A"], "budgets": [
		{"stage": "generate", "calls": 1000}, {"stage": "generate", "aiSeconds": 3600}, {"stage": "check", "calls": 5}]}]}`
	want := []genpipe.Budget{{Stage: genpipe.StageGenerate, Calls: 1000}, {Stage: genpipe.StageGenerate, AISeconds: 3600},
		{Stage: genpipe.StageCheck, Calls: 5}}
	for name, text := range map[string]string{"t.yaml": yaml, "t.json": json} {
		set, err := tenants.Parse(name, []byte(fill(text)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := set.Tenants[0].Budgets; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: budgets %+v; want %+v", name, got, want)
		}
		if got := set.Tenants[0].StageBudgets(genpipe.StageCheck); len(got) != 1 || got[0] != want[2] {
			t.Errorf("%s: StageBudgets(check) = %+v; want %+v", name, got, want[2:])
		}
	}
}

func TestParseBudgetErrors(t *testing.T) {
	for _, tc := range []struct{ budgets, want string }{
		{`[{stage: paint, calls: 1}]`, `tenant "acme" (tenants[0]): budgets[0]: stage "paint"`},
		{`[{stage: generate, calls: -1}]`, `tenant "acme" (tenants[0]): budgets[0]: -1 generate calls a day: a budget is not negative`},
		{`[{stage: generate}]`, `tenant "acme" (tenants[0]): budgets[0]: stage generate: set one of calls or aiSeconds`},
		{`[{stage: check, calls: 3, aiSeconds: 5}]`, `tenant "acme" (tenants[0]): budgets[0]: stage check: set one of calls or aiSeconds`},
		{`[{stage: check, cals: 3}]`, `unknown: a budget has stage and one of calls or aiSeconds`},
	} {
		text := fill("tenants:\n  - name: acme\n    keySha256: [%A]\n    budgets: " + tc.budgets + "\n")
		_, err := tenants.Parse("t.yaml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("budgets %s: %v; want an error with %q", tc.budgets, err, tc.want)
		}
	}
}
