// Package engine is the stage engine genpipe's workers run on: it consumes
// topics in a Kafka consumer group and runs a handler per record, as many at
// once as the downstream AI service takes, and no more.
//
// It keeps both lessons of package kafka's documentation (every record has
// a key; handler time never decides group membership) and goes further.
// Records are polled a bounded number at a time and an offset is committed
// only once its record and every record before it are done, so no request is
// lost; polling never waits for handlers, so slow handlers never decide group
// membership. Records of one partition run concurrently, so a few partitions
// can keep a large AI busy: the capacity, not the partition count, bounds the
// work. Several engines in one group split the capacity by the partitions
// they own, and each backs off when the AI answers 429.
//
// The pieces are an OffsetTracker per partition (pure, property-tested), a
// dispatcher with one limit for all partitions, and the group callbacks that
// drain and commit partitions before giving them up. See Engine.
package engine
