package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// What the engine must not take for granted of a real cluster: kfake is
// lenient where a stock Apache Kafka, Redpanda or MSK is not.

// The group session bounds of a stock Apache Kafka
// (group.min.session.timeout.ms and group.max.session.timeout.ms), for
// brokers whose own cannot be read.
const (
	StockMinSessionTimeout = 6 * time.Second
	StockMaxSessionTimeout = 30 * time.Minute
)

// boundsTimeout bounds the lookup of the brokers' session bounds.
const boundsTimeout = 5 * time.Second

// fatalGroupErrors are the group errors no retry fixes: the brokers refuse
// this member's own settings or rights, and will refuse them on every join.
// franz-go retries every error of its group management forever, so an
// engine that did not stop on them would run without ever consuming.
var fatalGroupErrors = []error{
	kerr.InvalidSessionTimeout,    // the session timeout is outside the brokers' bounds
	kerr.GroupAuthorizationFailed, // the principal may not use the group (ACLs)
	kerr.InvalidGroupID,           // the brokers refuse the group's name
	kerr.UnsupportedAssignor,      // KIP-848: the brokers have no such server-side assignor
}

func isFatalGroupError(err error) bool {
	for _, f := range fatalGroupErrors {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

// groupHook hears franz-go's group management errors (kgo.HookGroupManageError).
type groupHook struct{ e *Engine }

func (h groupHook) OnGroupManageError(err error) {
	if isFatalGroupError(err) {
		h.e.stopFatal(err)
	}
}

// stopFatal makes Run stop and return err, the first fatal group error.
func (e *Engine) stopFatal(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.fatal != nil || e.st.stopRun == nil {
		return
	}
	e.st.fatal = err
	e.st.stopRun()
	e.log.Error("engine: the brokers refuse this member, and retrying cannot help: stopping", "err", err)
}

// fatalError is what Run returns for err, a fatal group error: for a
// refused session timeout, a *SessionTimeoutError with the brokers' bounds.
func (e *Engine) fatalError(ctx context.Context, cl *kgo.Client, err error) error {
	if !errors.Is(err, kerr.InvalidSessionTimeout) {
		return fmt.Errorf("engine: group %q: the brokers refuse this member, and retrying cannot help: %w", e.group, err)
	}
	ctx, cancel := context.WithTimeout(ctx, boundsTimeout)
	defer cancel()
	lo, hi, berr := SessionTimeoutBounds(ctx, cl)
	return &SessionTimeoutError{Group: e.group, Timeout: e.cfg.sessionTimeout, Min: lo, Max: hi, BoundsErr: berr}
}

// SessionTimeoutError is the error Run returns when the brokers refuse the
// engine's session timeout (INVALID_SESSION_TIMEOUT): it is outside their
// group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and
// 30m on a stock Apache Kafka. No join can succeed until the setting
// changes, so the engine stops rather than retry forever as franz-go would.
type SessionTimeoutError struct {
	Group   string
	Timeout time.Duration // what the engine asked for (WithSessionTimeout)
	// Min and Max are the brokers' bounds, or zero when they could not be
	// read, and BoundsErr says why.
	Min, Max  time.Duration
	BoundsErr error
}

func (e *SessionTimeoutError) Error() string {
	if e.BoundsErr != nil {
		return fmt.Sprintf("engine: group %q: the brokers refuse the session timeout %v (INVALID_SESSION_TIMEOUT); "+
			"their bounds could not be read (%v), a stock Apache Kafka accepts %v to %v", e.Group, e.Timeout, e.BoundsErr,
			StockMinSessionTimeout, StockMaxSessionTimeout)
	}
	return fmt.Sprintf("engine: group %q: the brokers refuse the session timeout %v (INVALID_SESSION_TIMEOUT): they accept %v to %v "+
		"(group.min.session.timeout.ms, group.max.session.timeout.ms)", e.Group, e.Timeout, e.Min, e.Max)
}

// Unwrap lets errors.Is(err, kerr.InvalidSessionTimeout) hold.
func (e *SessionTimeoutError) Unwrap() error { return kerr.InvalidSessionTimeout }

// SessionTimeoutBounds returns the session timeouts the brokers of cl
// accept from group members: the largest group.min.session.timeout.ms and
// the smallest group.max.session.timeout.ms of the brokers, read with
// DescribeConfigs. It returns an error when a broker does not answer, the
// principal may not describe broker configs, or a broker does not report
// them (Redpanda names its own differently); callers then assume
// StockMinSessionTimeout and StockMaxSessionTimeout. Under KIP-848's
// consumer protocol the brokers set the session themselves
// (group.consumer.session.timeout.ms) and these bounds do not apply.
func SessionTimeoutBounds(ctx context.Context, cl *kgo.Client) (lo, hi time.Duration, err error) {
	adm := kadm.NewClient(cl) // not closed: that would close cl
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("broker metadata: %w", err)
	}
	// A broker by id: the empty name would describe only the cluster's
	// dynamic defaults, not what each broker was started with.
	rcs, err := adm.DescribeBrokerConfigs(ctx, meta.Brokers.NodeIDs()...)
	if err != nil {
		return 0, 0, fmt.Errorf("describe broker configs: %w", err)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			return 0, 0, fmt.Errorf("describe broker %s configs: %w", rc.Name, rc.Err)
		}
		bmin, err := msConfig(rc, "group.min.session.timeout.ms")
		if err != nil {
			return 0, 0, err
		}
		bmax, err := msConfig(rc, "group.max.session.timeout.ms")
		if err != nil {
			return 0, 0, err
		}
		lo = max(lo, bmin)
		if hi == 0 || bmax < hi {
			hi = bmax
		}
	}
	if hi == 0 {
		return 0, 0, errors.New("no broker reported its configs")
	}
	return lo, hi, nil
}

// msConfig reads the config key of rc, a count of milliseconds.
func msConfig(rc kadm.ResourceConfig, key string) (time.Duration, error) {
	for _, c := range rc.Configs {
		if c.Key != key || c.Value == nil {
			continue
		}
		ms, err := strconv.ParseInt(*c.Value, 10, 64)
		if err != nil || ms < 0 {
			return 0, fmt.Errorf("broker %s: %s = %q, not a count of milliseconds", rc.Name, key, *c.Value)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	return 0, fmt.Errorf("broker %s does not report %s", rc.Name, key)
}

// warnWithoutKIP848 logs a warning when the client asks for KIP-848's
// consumer group protocol (kgo.ServerSideBalancer) and no broker has it
// (ConsumerGroupHeartbeat v1, Kafka 4.0+): franz-go then joins with the
// classic protocol without a word above info, and an operator who asked
// for the new protocol would not know that the group runs the old one.
func (e *Engine) warnWithoutKIP848(ctx context.Context, cl *kgo.Client) {
	if on, _ := cl.OptValue(kgo.ServerSideBalancer).(bool); !on {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, boundsTimeout)
	defer cancel()
	has, err := hasKIP848(ctx, cl)
	switch {
	case err != nil:
		e.log.Debug("engine: cannot tell whether the brokers have the consumer group protocol", "err", err)
	case !has:
		e.log.Warn("engine: the consumer group protocol (KIP-848) was asked for, but the brokers lack it (Kafka 4.0+ has it): " +
			"the group joins with the classic protocol instead")
	}
}

// hasKIP848 reports whether every broker that answers takes
// ConsumerGroupHeartbeat at version 1 or later, which franz-go requires.
func hasKIP848(ctx context.Context, cl *kgo.Client) (bool, error) {
	vs, err := kadm.NewClient(cl).ApiVersions(ctx)
	if err != nil {
		return false, err
	}
	answered := 0
	for _, v := range vs {
		if v.Err != nil {
			continue
		}
		answered++
		if _, hi, ok := v.KeyVersions(int16(kmsg.ConsumerGroupHeartbeat)); !ok || hi < 1 {
			return false, nil
		}
	}
	if answered == 0 {
		return false, errors.New("no broker answered ApiVersions")
	}
	return true, nil
}
