package doctor

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ParseProperties reads Java client properties (key=value lines, # and !
// comments) over base. Kafka keys: linger.ms, batch.size, partitioner.class,
// max.poll.records, max.poll.interval.ms, enable.auto.commit. Workload keys:
// genpipe.keyless, genpipe.record.bytes, genpipe.in.flight,
// genpipe.handler.time.ms, genpipe.partitions, genpipe.consumers,
// genpipe.ai.capacity. Unknown keys are ignored: a real client file holds
// many that do not matter here.
func ParseProperties(r io.Reader, base Settings) (Settings, error) {
	s := base
	scanner := bufio.NewScanner(r)
	for line := 1; scanner.Scan(); line++ {
		text := strings.TrimSpace(scanner.Text())
		if text == "" || text[0] == '#' || text[0] == '!' {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			key, value, ok = strings.Cut(text, ":")
		}
		if !ok {
			return s, fmt.Errorf("doctor: line %d: %q is not key=value", line, text)
		}
		if err := s.set(strings.TrimSpace(key), strings.TrimSpace(value)); err != nil {
			return s, fmt.Errorf("doctor: line %d: %w", line, err)
		}
	}
	if err := scanner.Err(); err != nil {
		return s, fmt.Errorf("doctor: read properties: %w", err)
	}
	return s, nil
}

func (s *Settings) set(key, value string) error {
	// The setting of each key; the field's type says how its value parses,
	// a time.Duration from milliseconds.
	fields := map[string]any{
		"linger.ms": &s.Linger, "batch.size": &s.BatchBytes, "partitioner.class": &s.Partitioner,
		"max.poll.records": &s.MaxPollRecords, "max.poll.interval.ms": &s.MaxPollInterval, "enable.auto.commit": &s.AutoCommit,
		"genpipe.keyless": &s.Keyless, "genpipe.record.bytes": &s.RecordBytes, "genpipe.in.flight": &s.InFlight,
		"genpipe.handler.time.ms": &s.HandlerTime, "genpipe.partitions": &s.Partitions, "genpipe.consumers": &s.Consumers,
		"genpipe.ai.capacity": &s.AICapacity,
	}
	var err error
	switch p := fields[key].(type) {
	case *time.Duration:
		var ms int64
		ms, err = strconv.ParseInt(value, 10, 64)
		*p = time.Duration(ms) * time.Millisecond
	case *int:
		*p, err = strconv.Atoi(value)
	case *bool:
		*p, err = strconv.ParseBool(value)
	case *string: // partitioner.class
		*p = partitioner(value)
	}
	if err != nil {
		return fmt.Errorf("%s=%q: %w", key, value, err)
	}
	return nil
}

// partitioner maps a partitioner.class to how it places keyless records.
func partitioner(class string) string {
	switch {
	case strings.HasSuffix(class, "RoundRobinPartitioner"):
		return "uniform"
	case class == "", strings.HasSuffix(class, "DefaultPartitioner"), strings.HasSuffix(class, "UniformStickyPartitioner"):
		return "sticky"
	default:
		return "custom"
	}
}
