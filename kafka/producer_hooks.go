package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// WithProducerHooks adds franz-go hooks to the producer's client: metrics
// (kprom) and tracing (kotel), which see every record produced and every
// request to the brokers. The default is none. Hooks only observe: they
// cannot change acks, idempotence or partitioning, which genpipe relies on,
// which is why this takes hooks and not arbitrary client options.
func WithProducerHooks(hooks ...kgo.Hook) ProducerOption {
	return func(c *producerConfig) { c.hooks = append(c.hooks, hooks...) }
}
