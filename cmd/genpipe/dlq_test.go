package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
)

// deadLetterLine is one line of `genpipe dlq list -json`.
type deadLetterLine struct {
	ID, Stage, Topic, Key, Reason, Value string
	Attempts                             int
}

// A poison record on the requests topic goes to the dead-letter topic,
// where `genpipe dlq list` shows it with its reason, and `genpipe dlq
// replay` writes it back to where it came from.
func TestPoisonToDeadLetterAndReplay(t *testing.T) {
	p := testenv.NewProducer(t, sys.Brokers)
	key := "poison-" + uuid.NewString()
	value := []byte(`{"v":99,"type":"request.submitted","requestId":"` + key + `"}`)
	if err := p.Publish(t.Context(), genpipe.DefaultTopics().Requests, key, value); err != nil {
		t.Fatal(err)
	}
	letters := waitDeadLetters(t, key, 1)
	d := letters[0]
	if d.Stage != "check" || d.Topic != genpipe.DefaultTopics().Requests || d.Attempts != 0 ||
		!strings.Contains(d.Reason, "unknown event version 99") || d.Value != string(value) {
		t.Fatalf("dead letter = %+v; want the record as sent, from the check stage, with the version named", d)
	}

	var out bytes.Buffer
	if err := run(t.Context(), []string{"dlq", "replay", "-brokers", strings.Join(sys.Brokers, ","), "-id", d.ID}, &out, &out); err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "replayed "+d.ID) {
		t.Errorf("dlq replay printed %q; want it to name %s", out.String(), d.ID)
	}
	// Still poison for this build: it comes back to the dead-letter topic.
	waitDeadLetters(t, key, 2)

	var table bytes.Buffer
	if err := run(t.Context(), []string{"dlq", "list", "-brokers", strings.Join(sys.Brokers, ",")}, &table, &table); err != nil {
		t.Fatalf("dlq list: %v", err)
	}
	if !strings.Contains(table.String(), key) || !strings.Contains(table.String(), "REASON") {
		t.Errorf("dlq list table lacks the poison record:\n%s", table.String())
	}
}

func TestDLQCommandErrors(t *testing.T) {
	brokers := strings.Join(sys.Brokers, ",")
	for _, args := range [][]string{
		{"dlq"},
		{"dlq", "purge"},
		{"dlq", "replay", "-brokers", brokers}, // which?
		{"dlq", "replay", "-brokers", brokers, "-id", "999:999999"}, // no such dead letter
	} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out); err == nil {
			t.Errorf("genpipe %v succeeded; want an error", args)
		}
	}
}

// waitDeadLetters waits until `genpipe dlq list -json` shows n dead
// letters with key, and returns them.
func waitDeadLetters(t *testing.T, key string, n int) []deadLetterLine {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"dlq", "list", "-json", "-brokers", strings.Join(sys.Brokers, ",")}, &out, &out); err != nil {
			t.Fatalf("dlq list: %v\n%s", err, out.String())
		}
		var got []deadLetterLine
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			var d deadLetterLine
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("dlq list -json line %q: %v", sc.Text(), err)
			}
			if d.Key == key {
				got = append(got, d)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters with key %s after 20s; want %d", len(got), key, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
