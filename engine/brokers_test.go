package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
)

// runFor runs e until it returns or limit passes, and returns Run's error;
// it fails the test if Run is still running then.
func runFor(t *testing.T, e *Engine, limit time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	err := e.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Run still running after %v (returned %v): it did not stop on a group error no retry fixes", limit, err)
	}
	return err
}

// On a broker with Apache Kafka's stock bounds, a session timeout below
// 6 s is refused with INVALID_SESSION_TIMEOUT on every join. franz-go would
// retry it forever; Run returns it, with the brokers' bounds.
func TestRefusedSessionTimeoutStopsRun(t *testing.T) {
	t.Parallel()
	k := testenv.StartKafka(t, testutil.StockGroups())
	k.EnsureTopics(t, 2, "stock")
	e := newEngine(t, k.Addrs(), "g", "stock", func(context.Context, *kgo.Record) error { return nil },
		WithSessionTimeout(2*time.Second))
	err := runFor(t, e, 30*time.Second)
	var ste *SessionTimeoutError
	if !errors.As(err, &ste) || !errors.Is(err, kerr.InvalidSessionTimeout) {
		t.Fatalf("Run = %v, want a *SessionTimeoutError", err)
	}
	want := SessionTimeoutError{Group: "g", Timeout: 2 * time.Second, Min: broker.DefaultGroupMinSessionTimeout, Max: broker.DefaultGroupMaxSessionTimeout}
	if *ste != want {
		t.Errorf("error %+v, want %+v", *ste, want)
	}
	t.Log(err)
}

// Other errors the brokers answer on every join stop Run too: here the
// principal may not use the group.
func TestGroupAuthorizationFailureStopsRun(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, "acl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var refused atomic.Int64
	for _, key := range []kmsg.Key{kmsg.JoinGroup, kmsg.FindCoordinator} {
		c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if join, ok := req.(*kmsg.JoinGroupRequest); ok {
				refused.Add(1)
				resp := join.ResponseKind().(*kmsg.JoinGroupResponse)
				resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
				return resp, nil, true
			}
			return nil, nil, false
		})
	}
	e := newEngine(t, c.ListenAddrs(), "g", "acl", func(context.Context, *kgo.Record) error { return nil })
	err = runFor(t, e, 30*time.Second)
	if !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("Run = %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if refused.Load() == 0 {
		t.Error("no join was refused")
	}
}

// The bounds a broker enforces are read from its broker configs.
func TestSessionTimeoutBounds(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		opts     []broker.Option
		min, max time.Duration
	}{
		"stock": {nil, 6 * time.Second, 30 * time.Minute},
		"fast":  {[]broker.Option{testutil.FastGroups()}, testutil.MinSession, 30 * time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := testutil.StartBroker(t, c.opts...)
			cl := testutil.Must(kgo.NewClient(kgo.SeedBrokers(b.Addrs()...)))(t)
			defer cl.Close()
			lo, hi, err := SessionTimeoutBounds(testutil.Context(t), cl)
			if err != nil || lo != c.min || hi != c.max {
				t.Errorf("bounds %v to %v (%v), want %v to %v", lo, hi, err, c.min, c.max)
			}
		})
	}
}

// Asked for KIP-848's consumer protocol on a broker that lacks it (3.9),
// franz-go joins a classic group; the engine says so in a warning. On 4.0
// it does not.
func TestWarnsWithoutKIP848(t *testing.T) {
	t.Parallel()
	const warning = "the consumer group protocol (KIP-848) was asked for, but the brokers lack it"
	for version, wantWarning := range map[string]bool{"3.9": true, "4.0": false} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			k := testenv.StartKafka(t, testutil.FastGroups(), broker.WithKafkaVersion(version))
			k.EnsureTopics(t, 1, "kip848")
			produce(t, k.Addrs(), "kip848", 1, func(int) string { return "k" })
			var handled atomic.Int64
			log, logs := testutil.CaptureLogs(t)
			e := newEngine(t, k.Addrs(), "g", "kip848", func(context.Context, *kgo.Record) error { handled.Add(1); return nil },
				WithLogger(log), WithClientOpts(kgo.ServerSideBalancer()))
			start(t, e)
			testutil.Eventually(t, 20*time.Second, "the record handled", func() bool { return handled.Load() == 1 })
			// The check runs beside the consumption, so the record may be
			// handled before it ends.
			if wantWarning {
				testutil.Eventually(t, 20*time.Second, "the warning logged", func() bool { return logs.Contains(warning) })
			} else if logs.Contains(warning) {
				t.Errorf("warning logged on Kafka %s, which has the protocol", version)
			}
		})
	}
}

// A handler may finish work after the engine gave up on it (a paid call
// under way) and record its outcome elsewhere. Its record is abandoned —
// not done, not committed — and Run waits for it before returning, so the
// process does not exit under it.
func TestRunWaitsForAbandonedHandlers(t *testing.T) {
	t.Parallel()
	const topic = "detached"
	brokers := setup(t, topic, 1, 1)
	var started, finished atomic.Bool
	h := func(ctx context.Context, r *kgo.Record) error {
		started.Store(true)
		<-ctx.Done()                        // given up on at shutdown
		time.Sleep(1500 * time.Millisecond) // the call under way runs to its end
		finished.Store(true)
		return nil
	}
	e := newEngine(t, brokers, "g", topic, h, WithShutdownTimeout(0), WithAbandonWait(time.Minute))
	stop := start(t, e)
	testutil.Eventually(t, 10*time.Second, "the handler started", started.Load)
	stop()
	if !finished.Load() {
		t.Error("Run returned before the handler it gave up on finished")
	}
	if s := e.Stats(); s.Abandoned != 1 || s.Handled != 0 || s.InFlight != 0 {
		t.Errorf("abandoned %d handled %d running %d, want 1, 0 and 0", s.Abandoned, s.Handled, s.InFlight)
	}
	if got := committed(t, brokers, "g", topic, 0); got > 0 {
		t.Errorf("committed %d: an abandoned record was committed", got)
	}
}
