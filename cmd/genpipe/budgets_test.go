package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// The workers' budgets follow the tenants file: SIGHUP puts a changed file
// in force for the next AI call, and a bad file keeps the budgets in force.
func TestWorkerBudgetsReloadOnSIGHUP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const file = "tenants:\n  - name: acme\n    keySha256: [%s]\n    budgets: [{stage: generate, calls: %s}]\n"
	key := strings.Repeat("ab", 32)
	write(strings.Replace(strings.Replace(file, "%s", key, 1), "%s", "5", 1))
	var logs syncBuffer
	budgets, stop, err := watchBudgets(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got := budgets("acme"); len(got) != 1 || got[0] != (genpipe.Budget{Stage: genpipe.StageGenerate, Calls: 5}) {
		t.Fatalf("budgets of acme = %+v; want 5 generate calls", got)
	}
	if got := budgets("nobody"); got != nil {
		t.Errorf("budgets of an unknown tenant = %+v; want none", got)
	}
	write(strings.Replace(strings.Replace(file, "%s", key, 1), "%s", "7", 1))
	hangup(t)
	testutil.Eventually(t, 10*time.Second, "the reloaded budget", func() bool {
		got := budgets("acme")
		return len(got) == 1 && got[0].Calls == 7
	})
	write("tenants:\n  - name: acme\n    budgets: [{stage: paint, calls: 1}]\n")
	hangup(t)
	testutil.Eventually(t, 10*time.Second, "the failed reload's log", func() bool {
		return strings.Contains(logs.String(), "tenants file not reloaded: the budgets in force stay")
	})
	if got := budgets("acme"); len(got) != 1 || got[0].Calls != 7 {
		t.Errorf("budgets of acme after a bad file = %+v; want the 7 calls in force", got)
	}
}
