package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// -pprof-addr serves the profiles on a listener of its own, and nothing is
// served without it.
func TestPprofAddr(t *testing.T) {
	if url, stop, err := (pprofSettings{}).servePprof(t.Context(), slog.New(slog.DiscardHandler)); err != nil || url != "" {
		t.Fatalf("servePprof without an address = %q, %v; want nothing served", url, err)
	} else {
		stop()
	}
	url, stop, err := pprofSettings{PprofAddr: "127.0.0.1:0"}.servePprof(t.Context(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/heap?debug=1": "heap profile"} {
		if body := getOK(t, url+path); !strings.Contains(body, want) {
			t.Errorf("GET %s: %.200q; want %q in it", path, body, want)
		}
	}
	stop()
	if resp, err := http.Get(url + "/debug/pprof/"); err == nil {
		resp.Body.Close()
		t.Error("profiles still served after stop")
	}
	if _, _, err := (pprofSettings{PprofAddr: "256.0.0.1:1"}).servePprof(t.Context(), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("servePprof on a bad address succeeded")
	}
}

// Every long-running command offers -pprof-addr, empty by default, and a
// command started with it serves the profiles.
func TestPprofAddrOnEveryLongRunningCommand(t *testing.T) {
	for _, cmd := range []string{"api", "worker", "notifier", "up", "aisim", "broker", "objectstore"} {
		var out bytes.Buffer
		_ = run(t.Context(), []string{cmd, "-h"}, &out, &out)
		help := out.String()
		i := strings.Index(help, "-pprof-addr")
		if i < 0 || !strings.Contains(help, "GENPIPE_PPROF_ADDR") {
			t.Errorf("genpipe %s -h does not offer -pprof-addr ($GENPIPE_PPROF_ADDR)", cmd)
			continue
		}
		if line, _, _ := strings.Cut(help[i:], "\n  -"); strings.Contains(line, "(default") {
			t.Errorf("genpipe %s: -pprof-addr has a default: %q", cmd, line)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"aisim", "-model", "check", "-pprof-addr", addr}, io.Discard, io.Discard)
	}()
	defer func() { cancel(); <-done }()
	for {
		resp, err := http.Get("http://" + addr + "/debug/pprof/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /debug/pprof/ of genpipe aisim -pprof-addr: %s", resp.Status)
			}
			return
		}
		select {
		case err := <-done:
			t.Fatalf("genpipe aisim -pprof-addr %s ended: %v", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func getOK(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(body)
}
