package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// KafkaHooks returns the kgo hook that reports one Kafka client's metrics
// (franz-go's kprom plugin) into the registry as genpipe_kafka_*: bytes,
// records and batches produced and fetched by topic, connections, errors,
// request round trips, and what the client buffers. client names it in the
// "client" label (api-producer, check-consumer, ...); a name used before
// gets a number, because kprom registers a client's metrics when it starts
// and two clients with one label would collide. Pass the hook with
// kgo.WithHooks; kprom removes its metrics when the client closes.
func (r *Registry) KafkaHooks(client string) kgo.Hook {
	r.mu.Lock()
	r.clients[client]++
	if n := r.clients[client]; n > 1 {
		client = fmt.Sprintf("%s-%d", client, n)
	}
	r.mu.Unlock()
	return kprom.NewMetrics(Namespace,
		kprom.Subsystem("kafka"),
		kprom.Registry(r.reg),
		kprom.WithStaticLabel(prometheus.Labels{"client": client}),
		// Round trips are what tells a slow broker from a slow AI; the
		// other timing histograms add series and little insight.
		kprom.Histograms(kprom.RequestDurationE2E),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Records, kprom.Batches, kprom.UncompressedBytes),
	)
}
