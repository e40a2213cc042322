package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/notifier"
)

// The notifier takes -result-ttl as the API does, with the one default, so
// that a webhook's links live as long as a GET's.
func TestNotifierResultTTL(t *testing.T) {
	clearGenpipeEnv(t)
	args := append([]string{"-webhook-secret", "s"}, s3Required...)
	if cfg := mustParse[notifierConfig](t, args...); cfg.ResultTTL != genpipe.DefaultResultTTL || !cfg.LegacySignature {
		t.Errorf("notifier defaults: result TTL %v, legacy signature %v; want %v, true", cfg.ResultTTL, cfg.LegacySignature, genpipe.DefaultResultTTL)
	}
	t.Setenv("GENPIPE_RESULT_TTL", "3h")
	if cfg := mustParse[notifierConfig](t, args...); cfg.ResultTTL != 3*time.Hour {
		t.Errorf("GENPIPE_RESULT_TTL=3h: notifier result TTL %v", cfg.ResultTTL)
	}
	if _, err := parseFlags[notifierConfig](t, append(args, "-result-ttl", "200h")...); err == nil || !strings.Contains(err.Error(), "-result-ttl") {
		t.Errorf("-result-ttl 200h: %v; want it refused (presigned links live 7 days at most)", err)
	}
	for _, bad := range []string{"whsec_***", "whsec_c2hvcnQ="} {
		if _, err := parseFlags[notifierConfig](t, append(s3Required, "-webhook-secret", bad)...); err == nil || !strings.Contains(err.Error(), "-webhook-secret") {
			t.Errorf("-webhook-secret %s: %v; want it refused, naming the flag", bad, err)
		}
	}
}

// up writes a new secret in the Standard Webhooks form, and keeps one an
// earlier release wrote, which still signs as it did.
func TestUpWebhookSecret(t *testing.T) {
	clearGenpipeEnv(t)
	dir := t.TempDir()
	s, path, err := loadSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.ParseSecret(s.WebhookSecret); err != nil || !strings.HasPrefix(s.WebhookSecret, "whsec_") {
		t.Errorf("new secret %q (%v); want whsec_ and a base64 key", s.WebhookSecret, err)
	}
	if again, _, err := loadSecrets(dir); err != nil || again != s {
		t.Errorf("secrets on the next start %+v, %v; want those written", again, err)
	}

	const old = `{"s3AccessKey": "genpipe0a1b2c", "s3SecretKey": "00112233445566778899aabbccddeeff00112233",
  "webhookSecret": "4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a"}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _, err = loadSecrets(filepath.Dir(path))
	if err != nil || s.WebhookSecret != "4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a" {
		t.Fatalf("an earlier release's secrets.json: %+v, %v; want its secret kept", s, err)
	}
	if key, err := notifier.ParseSecret(s.WebhookSecret); err != nil || string(key) != s.WebhookSecret {
		t.Errorf("the earlier secret's key = %q, %v; want its bytes, as it signed before", key, err)
	}
}
