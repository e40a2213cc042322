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
	ms := func(p *time.Duration) error {
		n, err := strconv.ParseInt(value, 10, 64)
		*p = time.Duration(n) * time.Millisecond
		return err
	}
	integer := func(p *int) (err error) { *p, err = strconv.Atoi(value); return err }
	boolean := func(p *bool) (err error) { *p, err = strconv.ParseBool(value); return err }
	var err error
	switch key {
	case "linger.ms":
		err = ms(&s.Linger)
	case "batch.size":
		err = integer(&s.BatchBytes)
	case "partitioner.class":
		s.Partitioner = partitioner(value)
	case "max.poll.records":
		err = integer(&s.MaxPollRecords)
	case "max.poll.interval.ms":
		err = ms(&s.MaxPollInterval)
	case "enable.auto.commit":
		err = boolean(&s.AutoCommit)
	case "genpipe.keyless":
		err = boolean(&s.Keyless)
	case "genpipe.record.bytes":
		err = integer(&s.RecordBytes)
	case "genpipe.in.flight":
		err = integer(&s.InFlight)
	case "genpipe.handler.time.ms":
		err = ms(&s.HandlerTime)
	case "genpipe.partitions":
		err = integer(&s.Partitions)
	case "genpipe.consumers":
		err = integer(&s.Consumers)
	case "genpipe.ai.capacity":
		err = integer(&s.AICapacity)
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
