// Package kafka connects genpipe to any Kafka-protocol cluster with franz-go,
// and embeds one (kfake) for `genpipe up` and tests.
//
// It holds the two lessons genpipe is built on (docs/architecture.md tells
// the story behind them):
//
//  1. Every record has a key. [Producer.Publish] refuses an empty key, so
//     franz-go hashes every record to a partition (murmur2, like the Java
//     client) and a burst spreads over all partitions instead of piling into
//     the one the sticky partitioner would pick for keyless records.
//  2. Handler time never decides group membership: genpipe consumes with
//     package engine, which keeps polling while handlers run and commits an
//     offset only after its record and every record before it are done;
//     franz-go heartbeats in the background, and there is no
//     max.poll.interval to outlast.
//
// [RecordHandler] is the path every record takes through a stage, written
// in one place: observed, decoded (a record that is not an event of the
// stage is poison, set aside in the dead-letter topic), handled by the
// stage, and dead-lettered when the stage says so.
//
// A [Conn] says how a process connects to the cluster (brokers, client id,
// TLS, SASL, compression, consumer group protocol); every client the process
// creates goes through it, so none connects differently. The package
// functions (NewProducer, EnsureTopics, Tail, ReadDeadLetters) connect in
// plaintext with the defaults, for the embedded broker and tests.
//
// Delivery is at least once: a crash, a rebalance or a shutdown timeout can
// hand a record to a handler again, so handlers must be idempotent (genpipe
// claims every AI call per request and stage).
package kafka
