// Package kafka connects genpipe to any Kafka-protocol cluster with franz-go.
// The embedded broker of `genpipe broker`, `genpipe up` and the tests is
// package broker; this package does not depend on it.
//
// Two lessons shape it (docs/architecture.md tells the story behind them):
//
//  1. Every record has a key. Keyless records, batched for a linger and
//     spread by the sticky partitioner, pile a whole burst into one
//     partition, so most consumers sit idle. [Producer.Publish] refuses an
//     empty key, so franz-go hashes every record to a partition (murmur2,
//     like the Java client) and a burst spreads over all partitions.
//  2. Handler time never decides group membership. A consumer that polls
//     many records and handles them slowly outlasts the Java client's
//     max.poll.interval, leaves its group, and the records it did not commit
//     are consumed again. genpipe consumes with package engine, which keeps
//     polling while handlers run and commits an offset only after its record
//     and every record before it are done; franz-go heartbeats in the
//     background, and there is no max.poll.interval to outlast.
//
// [RecordHandler] is the path every record takes through a stage, written
// in one place: observed, decoded (a record that is not an event of the
// stage is poison, set aside in the dead-letter topic), handled by the
// stage, and dead-lettered when the stage says so.
//
// A [Conn] says how a process connects to the cluster (brokers, client id,
// TLS, SASL, compression, consumer group protocol); every client the process
// creates goes through it, so none connects differently. Tests connect the
// same way, with kafka.NewConn(addrs) and the defaults.
//
// Delivery is at least once: a crash, a rebalance or a shutdown timeout can
// hand a record to a handler again, so handlers must be idempotent (genpipe
// claims every AI call per request and stage).
package kafka
