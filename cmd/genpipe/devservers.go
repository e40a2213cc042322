package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/objectstore"
)

// The development servers: a Kafka broker and an S3 object store, for a
// laptop or a test, in processes of their own (`genpipe up` embeds both).
// Their defaults are what the clients' defaults expect: kafka.DefaultBrokers
// and s3.DefaultEndpoint.
const (
	defaultBrokerPort      = 9092
	defaultObjectStoreAddr = "127.0.0.1:9000"
)

// brokerConfig is the configuration of `genpipe broker`.
type brokerConfig struct {
	common
	pprofSettings
	Port       int
	DataDir    string
	Partitions int
	Retention  retentionSettings
}

func (c *brokerConfig) register(f *flags) {
	c.common.register(f)
	c.pprofSettings.register(f)
	f.Int(&c.Port, "port", "GENPIPE_KAFKA_PORT", defaultBrokerPort, "port on 127.0.0.1 (0 for a free one)", between(0, 65535))
	f.String(&c.DataDir, "data-dir", "GENPIPE_DATA_DIR", "./genpipe-data/kafka", "where topics, records and offsets persist", nonEmpty)
	f.Int(&c.Partitions, "partitions", "GENPIPE_PARTITIONS", kafka.DefaultPartitions, "default partitions of auto-created topics", atLeast(1))
	c.Retention.register(f)
}

func (c *brokerConfig) part() string { return "broker" }

func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runProfiled(ctx, "broker", args, stderr, func(ctx context.Context, cfg brokerConfig, log *slog.Logger) error {
		return runBroker(ctx, cfg, stdout, log)
	})
}

func runBroker(ctx context.Context, cfg brokerConfig, stdout io.Writer, log *slog.Logger) error {
	b, err := broker.Start(append(cfg.Retention.options(), broker.WithDataDir(cfg.DataDir), broker.WithPort(cfg.Port),
		broker.WithPartitions(int32(cfg.Partitions)), broker.WithLogger(log))...)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "genpipe broker listening on %s (data in %s)\n", b.Addrs()[0], cfg.DataDir)
	<-ctx.Done()
	return nil
}

// objectStoreConfig is the configuration of `genpipe objectstore`.
type objectStoreConfig struct {
	common
	pprofSettings
	Addr      string
	DataDir   string
	AccessKey string
	SecretKey string
}

func (c *objectStoreConfig) register(f *flags) {
	c.common.register(f)
	c.pprofSettings.register(f)
	f.String(&c.Addr, "addr", "GENPIPE_S3_ADDR", defaultObjectStoreAddr, "listen address", nonEmpty)
	f.String(&c.DataDir, "data-dir", "GENPIPE_DATA_DIR", "./genpipe-data/objects", "where objects are stored, as files", nonEmpty)
	f.String(&c.AccessKey, "access-key", "GENPIPE_S3_ACCESS_KEY", "", "root access key")
	f.Secret(&c.SecretKey, "secret-key", "GENPIPE_S3_SECRET_KEY", "root secret key")
	f.Check(func() error { return requiredFlags("access-key", c.AccessKey, "secret-key", c.SecretKey) })
}

func (c *objectStoreConfig) part() string { return "objectstore" }

func cmdObjectStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runProfiled(ctx, "objectstore", args, stderr, func(ctx context.Context, cfg objectStoreConfig, _ *slog.Logger) error {
		return runObjectStore(ctx, cfg, stdout)
	})
}

func runObjectStore(ctx context.Context, cfg objectStoreConfig, stdout io.Writer) error {
	srv, err := objectstore.Start(ctx, cfg.DataDir, objectstore.WithAddr(cfg.Addr), objectstore.WithCredentials(cfg.AccessKey, cfg.SecretKey))
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "genpipe objectstore serving %s (data in %s)\n", srv.Endpoint(), cfg.DataDir)
	<-ctx.Done()
	return nil
}
