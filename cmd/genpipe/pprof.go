package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"
)

// The sampling of the block and mutex profiles while -pprof-addr is set.
const (
	blockProfileRate     = int(10 * time.Microsecond)
	mutexProfileFraction = 100
)

// pprofSettings say where a long-running process serves Go's profiles.
// Profiles show the process's internals (its command line among them) and
// cost CPU while they run, so they get a listener of their own, off by
// default, meant for 127.0.0.1: never the API's public address.
type pprofSettings struct {
	PprofAddr string
}

func (p *pprofSettings) register(f *flags) {
	f.String(&p.PprofAddr, "pprof-addr", "GENPIPE_PPROF_ADDR", "",
		"address serving Go's runtime profiles (net/http/pprof) under /debug/pprof/, e.g. 127.0.0.1:6060; empty for none. "+
			"Bind it to 127.0.0.1 and reach it through SSH or kubectl port-forward: profiles expose the process's internals")
}

// servePprof serves the profiles on PprofAddr, when set, until stop is
// called, and returns its URL. It listens before returning, so a port in
// use fails the start.
func (p pprofSettings) servePprof(ctx context.Context, log *slog.Logger) (url string, stop func(), err error) {
	if p.PprofAddr == "" {
		return "", func() {}, nil
	}
	ln, url, err := listen(p.PprofAddr)
	if err != nil {
		return "", nil, fmt.Errorf("pprof: %w", err)
	}
	log = log.With("server", "pprof")
	// The block and mutex profiles are empty unless sampled; with profiles
	// asked for, sample them lightly: a blocking event per 10µs blocked,
	// one contention in 100.
	runtime.SetBlockProfileRate(blockProfileRate)
	runtime.SetMutexProfileFraction(mutexProfileFraction)
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Warn("profiles served beyond this machine: bind -pprof-addr to 127.0.0.1", "addr", ln.Addr().String())
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serveHTTP(ctx, ln, pprofHandler(), log, pprofServer); err != nil {
			log.Error("pprof server", "err", err)
		}
	}()
	return url, func() {
		cancel()
		<-done
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	}, nil
}

// pprofHandler serves net/http/pprof on a mux of its own: importing the
// package registers the same handlers on http.DefaultServeMux, which no
// genpipe server uses.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and every named profile under it: heap, goroutine, block, mutex, allocs...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
