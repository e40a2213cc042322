//go:build unix

package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// What a real Kafka cluster does that a lenient test broker would not: the
// standalone broker (`genpipe broker`) has Apache Kafka's stock group
// settings, and these tests run the parts against it, or without it.

// A worker asking for a session timeout under the brokers' minimum (6 s on
// a stock Kafka) would loop on INVALID_SESSION_TIMEOUT and never consume.
// It stops instead, with a message naming the flag and the brokers' bounds.
func TestWorkerRefusedSessionTimeoutStops(t *testing.T) {
	s := newStandalone(t)
	s.startBroker()
	s.startObjectStore()
	w := s.start("worker-generate", []string{"GENPIPE_SESSION_TIMEOUT=2s"}, "worker", "--stage", "generate")
	w.stopping = true // it stops by itself
	select {
	case <-w.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the worker kept running with a session timeout the broker refuses")
	}
	if code := w.cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("the worker exited with status 0, want an error status")
	}
	log := readLog(t, w)
	for _, want := range []string{"-session-timeout", "2s", "6s to 30m0s", "group.min.session.timeout.ms"} {
		if !strings.Contains(log, want) {
			t.Errorf("the worker's output does not say %q:\n%s", want, log)
		}
	}
}

// POST /v1/requests holds a client no longer than the API's publish timeout
// when Kafka is unreachable: the answer is 503 with Retry-After, well
// within 3 s.
func TestSubmitWithKafkaDownAnswers503Quickly(t *testing.T) {
	s := newStandalone(t)
	broker := s.startBroker()
	s.startObjectStore()
	s.startAPI()
	var u upload
	img := pngImage(t, 320, 200)
	if resp := s.call("POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(img)}, &u); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads: %s", resp.Status)
	}
	if status := put(t, u.UploadURL, "image/png", img); status != http.StatusOK {
		t.Fatalf("PUT upload: %d", status)
	}
	s.stop(broker)

	var problem struct{ Code string }
	start := time.Now()
	resp := s.call("POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "forest", "description": "Kafka is down."}, &problem)
	took := time.Since(start)
	t.Logf("POST /v1/requests with Kafka down: %s (%s) in %s", resp.Status, problem.Code, took.Round(time.Millisecond))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Errorf("answer %s, Retry-After %q, Content-Type %q; want a 503 problem with Retry-After",
			resp.Status, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	if took >= 3*time.Second {
		t.Errorf("the answer took %s, want under 3s", took.Round(time.Millisecond))
	}
}

// The API waits for Kafka at most submitPublishTimeout, which must leave
// room within the 3 s a client is promised (measured end to end by
// TestSubmitWithKafkaDownAnswers503Quickly).
func TestSubmitPublishTimeoutBound(t *testing.T) {
	if submitPublishTimeout <= 0 || submitPublishTimeout > 2500*time.Millisecond {
		t.Errorf("submitPublishTimeout %v, want more than 0 and at most 2.5s", submitPublishTimeout)
	}
}
