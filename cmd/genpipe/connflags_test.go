package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/kafka/kafkatest"
)

// The Kafka connection flags reach the clients: the commands that talk to
// Kafka on their own (dlq, doctor) work against a broker that serves only
// TLS and SCRAM, with the password from the environment, and fail with a
// clear error that never shows it when it is wrong.
func TestKafkaConnectionFlags(t *testing.T) {
	const user, password = "genpipe-ops", "the password from the environment"
	ca := kafkatest.NewCA(t)
	b, err := broker.Start(broker.WithTLS(ca.ServerTLS(t, false, "127.0.0.1")),
		broker.WithSASL(kafka.SASLScramSHA512, user, password))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	caFile := ca.CAFile(t)
	conn, err := kafka.NewConn(b.Addrs(), kafka.WithSASL(kafka.SASLScramSHA512, user, password),
		kafka.WithTLS(tlsFromFiles(t, kafka.TLSFiles{CAFile: caFile})))
	if err != nil {
		t.Fatal(err)
	}
	topics := genpipe.DefaultTopics()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := conn.EnsureTopics(ctx, 2, topics.DeadLetters, topics.Requests); err != nil {
		t.Fatal(err)
	}
	p, err := conn.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dl := genpipe.DeadLetter{Topic: topics.Requests, Key: []byte("req-flags"), Value: []byte("poison"), Stage: "check",
		Reason: "flag test", At: time.Now()}
	if err := kafka.NewDeadLetters(p, topics.DeadLetters).SendDeadLetter(ctx, dl); err != nil {
		t.Fatal(err)
	}

	connArgs := []string{"-brokers", b.Addrs()[0], "-kafka-tls-ca", caFile, "-kafka-sasl-mechanism", "SCRAM-SHA-512",
		"-kafka-sasl-user", user, "-kafka-client-id", "genpipe-ops", "-kafka-compression", "zstd"}
	t.Setenv("GENPIPE_KAFKA_SASL_PASSWORD", password)
	var out bytes.Buffer
	if err := run(ctx, append([]string{"dlq", "list"}, connArgs...), &out, &out); err != nil ||
		!strings.Contains(out.String(), "req-flags") || !strings.Contains(out.String(), "flag test") {
		t.Fatalf("dlq list over TLS and SCRAM: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, append([]string{"dlq", "replay", "-all"}, connArgs...), &out, &out); err != nil ||
		!strings.Contains(out.String(), "replayed") {
		t.Fatalf("dlq replay over TLS and SCRAM: %v\n%s", err, out.String())
	}
	out.Reset()
	err = run(ctx, append([]string{"doctor", "-topic", topics.Requests, "-keyless=false"}, connArgs...), &out, &out)
	if !strings.Contains(out.String(), "live: topic "+topics.Requests) {
		t.Fatalf("doctor over TLS and SCRAM: %v\n%s", err, out.String())
	}

	// Without the CA the broker's certificate is refused at once.
	out.Reset()
	err = run(ctx, []string{"dlq", "list", "-brokers", b.Addrs()[0], "-kafka-tls", "-kafka-sasl-mechanism", "SCRAM-SHA-512",
		"-kafka-sasl-user", user}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "check the TLS and SASL settings") || strings.Contains(err.Error(), password) {
		t.Errorf("dlq list without the CA: %v; want a refusal naming the settings, without the password", err)
	}

	// Help shows where the password comes from, never the password.
	out.Reset()
	_ = run(ctx, []string{"dlq", "list", "-h"}, &out, &out)
	if !strings.Contains(out.String(), "GENPIPE_KAFKA_SASL_PASSWORD") || strings.Contains(out.String(), password) {
		t.Errorf("dlq list -h shows the password or hides its variable:\n%s", out.String())
	}
}

func tlsFromFiles(t *testing.T, f kafka.TLSFiles) *tls.Config {
	t.Helper()
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// parseFlags registers a fresh T's flags and parses args.
func parseFlags[T any, P interface {
	*T
	register(*flags)
}](t *testing.T, args ...string) (*T, error) {
	t.Helper()
	cfg := P(new(T))
	f := newFlags("test", io.Discard)
	cfg.register(f)
	return (*T)(cfg), f.Parse(args)
}

// mustParse is parseFlags for arguments that must parse.
func mustParse[T any, P interface {
	*T
	register(*flags)
}](t *testing.T, args ...string) *T {
	t.Helper()
	cfg, err := parseFlags[T, P](t, args...)
	if err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return cfg
}

func TestKafkaConnFlagValues(t *testing.T) {
	cfg := mustParse[kafkaSettings](t)
	conn, err := cfg.conn()
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.String(); got != "127.0.0.1:9092 (plaintext)" {
		t.Errorf("defaults connect as %s, want plaintext to 127.0.0.1:9092", got)
	}
	cfg = mustParse[kafkaSettings](t, "-brokers", "a:9093,b:9093", "-kafka-tls-server-name", "kafka.internal",
		"-kafka-sasl-mechanism", "scram-sha-256", "-kafka-sasl-user", "svc", "-kafka-sasl-password", "pw",
		"-kafka-group-protocol", "consumer")
	conn, err = cfg.conn()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := conn.String(), `a:9093,b:9093 (TLS, SASL SCRAM-SHA-256 as "svc")`; got != want {
		t.Errorf("connects as %s, want %s (a TLS setting implies -kafka-tls)", got, want)
	}
	for _, args := range [][]string{
		{"-kafka-sasl-mechanism", "GSSAPI", "-kafka-sasl-user", "u", "-kafka-sasl-password", "p"},
		{"-kafka-sasl-user", "u"}, // no mechanism
		{"-kafka-compression", "brotli"},
		{"-kafka-group-protocol", "streams"},
		{"-kafka-tls-ca", "/nonexistent/ca.pem"},
		{"-kafka-tls-cert", "/nonexistent/cert.pem"}, // no key
	} {
		if _, err := mustParse[kafkaSettings](t, args...).conn(); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

// s3Required are the flags without a default that every S3 user needs.
var s3Required = []string{"-s3-access-key", "a", "-s3-secret-key", "s"}

func TestS3Flags(t *testing.T) {
	for _, c := range []struct {
		args, env []string
		set, v    bool
	}{
		{nil, nil, false, false},
		{[]string{"-s3-path-style"}, nil, true, true},
		{[]string{"-s3-path-style=false"}, nil, true, false},
		{[]string{"-s3-path-style=auto"}, []string{"GENPIPE_S3_PATH_STYLE", "false"}, false, false},
		{nil, []string{"GENPIPE_S3_PATH_STYLE", "false"}, true, false},
		{nil, []string{"GENPIPE_S3_PATH_STYLE", "true"}, true, true},
	} {
		if c.env != nil {
			t.Setenv(c.env[0], c.env[1])
		}
		cfg := mustParse[s3Settings](t, append(c.args, s3Required...)...)
		if cfg.PathStyle.set != c.set || cfg.PathStyle.v != c.v {
			t.Errorf("%v %v: path style %v", c.args, c.env, cfg.PathStyle.String())
		}
		wantOpts := 2 // session token, region
		if c.set {
			wantOpts++
		}
		if n := len(cfg.options()); n != wantOpts {
			t.Errorf("%v %v: %d options, want %d", c.args, c.env, n, wantOpts)
		}
	}
	if _, err := parseFlags[s3Settings](t, append([]string{"-s3-path-style=sometimes"}, s3Required...)...); err == nil {
		t.Error("-s3-path-style=sometimes accepted")
	}

	t.Setenv("GENPIPE_S3_SECRET_KEY", "secret from env")
	t.Setenv("GENPIPE_S3_SESSION_TOKEN", "token from env")
	var help bytes.Buffer
	var cfg s3Settings
	f := newFlags("test", &help)
	cfg.register(f)
	if err := f.Parse([]string{"-s3-access-key", "a"}); err != nil {
		t.Fatal(err)
	}
	f.PrintDefaults()
	if cfg.SecretKey != "secret from env" || cfg.SessionToken != "token from env" {
		t.Errorf("secrets from the environment: %q, %q", cfg.SecretKey, cfg.SessionToken)
	}
	if strings.Contains(help.String(), "from env") {
		t.Errorf("help shows a secret:\n%s", help.String())
	}
}
