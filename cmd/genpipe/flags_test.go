//go:build unix

package main

import (
	"io"
	"strings"
	"testing"
)

// Every command refuses a bad value the same way, before it starts
// anything: an error that names the flag and says what is wanted.
func TestBadFlagValueStopsTheStart(t *testing.T) {
	clearGenpipeEnv(t)
	for _, c := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"worker", "-stage", "both"}, "-stage: want check, generate"},
		{[]string{"worker", "-stage", "check", "-check-capacity", "-1"}, "-check-capacity: want at least 1"},
		{[]string{"worker", "-stage", "check", "-ai-attempts", "0"}, "-ai-attempts: want at least 1"},
		{[]string{"worker", "-stage", "check", "-session-timeout", "0s"}, "-session-timeout: want more than 0"},
		{[]string{"worker", "-stage", "check", "-check-ai-url", "127.0.0.1:8081"}, "-check-ai-url: want an http:// or https:// URL"},
		{[]string{"api", "-s3-bucket", ""}, "-s3-bucket: want a value"},
		{[]string{"api", "-upload-ttl", "0s"}, "-upload-ttl: want 1s to 168h0m0s"},
		{[]string{"api", "-max-backlog", "-5"}, "-max-backlog: want at least 0"},
		{[]string{"api", "-database-url", "mysql://db"}, "-database-url"},
		{[]string{"api", "-log-format", "yaml"}, "-log-format: want text, json"},
		{[]string{"notifier", "-s3-access-key", "a", "-s3-secret-key", "s"}, "-webhook-secret is required"},
		{[]string{"aisim", "-model", "check", "-fail-rate", "1.5"}, "-fail-rate: want 0 to 1"},
		{[]string{"aisim", "-model", "check", "-fail-rate", "0.6", "-busy-rate", "0.6"}, "add up to more than 1"},
		{[]string{"aisim", "-model", "draw"}, "-model: want check, generate"},
		{[]string{"broker", "-port", "70000"}, "-port: want 0 to 65535"},
		{[]string{"objectstore", "-access-key", "a"}, "-secret-key is required"},
		{[]string{"up", "-partitions", "0"}, "-partitions: want at least 1"},
		{[]string{"up", "-generate-latency", "-1s"}, "-generate-latency: want at least 0s"},
		{[]string{"doctor", "-ai-capacity", "0"}, "-ai-capacity: want at least 1"},
		{[]string{"dlq", "list", "-partitions", "0"}, "-partitions: want at least 1"},
	} {
		err := run(t.Context(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("genpipe %s = %v; want an error with %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// A variable that does not parse as its flag's type is an error naming the
// variable and the flag, for every flag of every command, not a silent
// fall back to the default.
func TestBadVariableStopsTheStart(t *testing.T) {
	clearGenpipeEnv(t)
	cmds, err := flagReference(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, cmd := range cmds {
		for _, f := range cmd.Flags {
			if f.Env == "" || f.Type == "string" {
				continue
			}
			t.Run(cmd.Name+"/"+f.Name, func(t *testing.T) {
				t.Setenv(f.Env, "not-a-value")
				err := run(t.Context(), append(strings.Fields(cmd.Name), "-h"), io.Discard, io.Discard)
				if err == nil || !strings.Contains(err.Error(), "$"+f.Env) || !strings.Contains(err.Error(), "-"+f.Name) {
					t.Errorf("%s=not-a-value: %v; want an error naming $%s and -%s", f.Env, err, f.Env, f.Name)
				}
			})
			tried++
		}
	}
	if tried < 20 {
		t.Fatalf("only %d typed flags with a variable found", tried)
	}
}
