package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// How every command shuts down: the first SIGINT or SIGTERM cancels its
// context, and each part then stops taking work and finishes or hands back
// what it has within the shutdown timeout (the engine commits and leaves
// its group, HTTP servers stop accepting and finish their requests). A
// second signal is for an operator who will not wait: the process exits at
// once, and whatever was in flight is handled again by the next owner.

// onSignals returns a context canceled at the first SIGINT or SIGTERM. At
// the second it calls exit with 128 + the signal's number (130 for SIGINT,
// 143 for SIGTERM), as a shell reports a process killed by it. stop stops
// listening and releases the context.
func onSignals(parent context.Context, log *slog.Logger, exit func(code int)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info("shutting down: finishing in-flight work; signal again to exit at once", "signal", sig.String())
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			code := 128 + signalNumber(sig)
			log.Warn("second signal: exiting at once; in-flight work will be handled again", "signal", sig.String(), "status", code)
			exit(code)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// onHangup calls reload at each SIGHUP, one call at a time, until stop.
// Only a part with something to re-read listens: elsewhere SIGHUP keeps
// its default, ending the process (as when its terminal closes). The
// listening starts before onHangup returns, so no SIGHUP sent after falls
// to the default.
func onHangup(reload func()) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-sigs:
				reload()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		<-finished
	}
}

func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return int(syscall.SIGINT)
}

// endStreamsWith gives event streams (SSE) a context that ends with ctx.
// Other requests get one that outlives ctx, so that http.Server.Shutdown
// lets those under way finish (a request being accepted into Kafka, an AI
// call); a stream never finishes by itself and would hold the shutdown
// until its timeout, while its client reconnects to another server anyway.
func endStreamsWith(ctx context.Context, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isEventStream(r) {
			rctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			defer context.AfterFunc(ctx, cancel)()
			r = r.WithContext(rctx)
		}
		h.ServeHTTP(w, r)
	})
}

// isEventStream reports whether r is for an SSE stream: a GET of a path in
// /events, as the API's streams are. By route, not by Accept: a client
// that sends Accept: text/event-stream with a submission must not have it
// cut at shutdown like a stream.
func isEventStream(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/events")
}
