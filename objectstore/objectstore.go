// Package objectstore runs an embedded S3 server: versitygw (embedgw) with its
// posix backend, storing each object as a file under a directory. It is the
// object store of `genpipe objectstore` and `genpipe up`, and of the tests.
//
// It is a development server, apart from the client: package s3 talks to any
// S3-compatible service and never imports this package, so a process that
// only uses a real object store does not compile versitygw in. The server
// checks every request's SigV4 signature and each bucket's CORS
// configuration, as a real store does, so presigned URLs fail here the way
// they would fail in production.
package objectstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/debuglogger"
	"github.com/versity/versitygw/embedgw"

	"github.com/genpipe/genpipe/backoff"
)

// Layout of a server's directory.
const (
	bucketsDir      = "buckets"          // the posix root: one directory per bucket, one file per object
	sidecarDir      = "meta"             // object metadata, when the filesystem has no user xattrs
	credentialsFile = "credentials.json" // generated root keys, when none are given
)

// HealthPath answers GET with 200 and no authentication on a running
// Server. "_" cannot start a bucket name, so it hides no bucket.
const HealthPath = "/_health"

// Region is the region the server signs for: us-east-1, the default of
// s3.Store (s3.WithRegion).
const Region = "us-east-1"

// startTimeout bounds how long Start waits for the gateway to answer, unless
// its context ends first.
const startTimeout = 10 * time.Second

// running guards the process-wide embedgw singleton before Start touches
// anything: posix.New changes the process's working directory, which would
// break a server that is already running.
var running atomic.Bool

// Server is a running object store.
//
// Only one Server may run per process: embedgw keeps package-level state,
// and its posix backend resolves paths against the process's working
// directory, which Start changes to the server's bucket directory until
// Close restores it. Relative paths opened while a Server runs resolve
// there, so make paths absolute before starting one. A Server may be started
// again, on the same or another directory, after Close returns.
type Server struct {
	endpoint      string
	access        string
	secret        string
	root          string // the posix root
	prevWD        string // the working directory before Start
	cancel        context.CancelFunc
	done          chan struct{} // closed when RunVersityGW returns
	runErr        error         // what RunVersityGW returned; read after done
	closeOnce     sync.Once
	closeErr      error
	metadataStore string // "xattr" or "sidecar"
}

type config struct {
	addr         string
	access       string
	secret       string
	forceSidecar bool // for tests of the fallback on filesystems with xattrs
}

// Option configures Start.
type Option func(*config)

// WithAddr sets the address the server listens on, overriding the default
// "127.0.0.1:0": a free loopback port, chosen by listening on port 0 and
// closing the listener before embedgw opens its own (so another process
// could, rarely, take it in between). A fixed address lets clients
// configured with it survive a restart. A missing host (":9000") means
// 127.0.0.1; an explicit host is used as given, and a host other than
// loopback serves the machine's network.
func WithAddr(addr string) Option {
	return func(c *config) { c.addr = addr }
}

// WithCredentials sets the root access key pair that requests must be
// signed with, overriding the default of a random pair generated on the
// first start and kept in the directory's credentials.json (mode 0600), so
// that a restart on the same directory keeps it; read it with
// Server.Credentials. Given keys are never written to disk, so every start
// must give them again.
func WithCredentials(accessKey, secretKey string) Option {
	return func(c *config) { c.access, c.secret = accessKey, secretKey }
}

// Start starts an S3 server storing its data under dir (created if
// missing): buckets in dir/buckets, metadata in user xattrs or, where the
// filesystem has none, in dir/meta, and generated credentials in
// dir/credentials.json. It returns once the server answers HTTP requests,
// or fails after 10s. ctx bounds the start only; the server runs until
// Close.
func Start(ctx context.Context, dir string, opts ...Option) (*Server, error) {
	cfg := config{addr: "127.0.0.1:0"}
	for _, opt := range opts {
		opt(&cfg)
	}
	if (cfg.access == "") != (cfg.secret == "") {
		return nil, errors.New("objectstore: start: give both an access key and a secret key, or neither")
	}
	if !running.CompareAndSwap(false, true) {
		return nil, errors.New("objectstore: start: a server is already running in this process (embedgw allows one)")
	}
	s, err := startServer(ctx, dir, cfg)
	if err != nil {
		running.Store(false)
		return nil, err
	}
	return s, nil
}

func startServer(ctx context.Context, dir string, cfg config) (_ *Server, err error) {
	// Absolute paths first: posix.New changes the working directory.
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("objectstore: start: %w", err)
	}
	root := filepath.Join(dir, bucketsDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("objectstore: start: %w", err)
	}
	if cfg.access == "" {
		if cfg.access, cfg.secret, err = loadCredentials(filepath.Join(dir, credentialsFile)); err != nil {
			return nil, fmt.Errorf("objectstore: start: %w", err)
		}
	}
	addr, err := resolveAddr(cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("objectstore: start: %w", err)
	}

	// Metadata (content type, ETag, bucket CORS and ACL) goes in user xattrs
	// where the filesystem has them, else in a sidecar tree, which versitygw
	// requires to be outside the posix root (and so out of bucket listings).
	// A directory that once used the sidecar keeps using it.
	var ms meta.MetadataStorer = meta.XattrMeta{}
	popts := posix.PosixOpts{
		Concurrency: 256, // bounds threads blocked in filesystem calls
		// Zero would refuse every CopyObject; 5 GiB is S3's limit.
		CopyObjectThreshold: 5 << 30,
		// A named temporary file (in the bucket's hidden temporary
		// directory, renamed into place) rather than an O_TMPFILE one:
		// on ext4 under load, opening an O_TMPFILE took 0.4 ms of system
		// time, a quarter of the API's CPU for a request (its input
		// copy); the named file costs a sixth of that. Objects are as
		// atomic either way.
		ForceNoTmpFile: true,
	}
	metadataStore := "xattr"
	sidecar := filepath.Join(dir, sidecarDir)
	_, statErr := os.Stat(sidecar)
	if cfg.forceSidecar || statErr == nil || (meta.XattrMeta{}).Test(root) != nil {
		if err := os.MkdirAll(sidecar, 0o755); err != nil {
			return nil, fmt.Errorf("objectstore: start: %w", err)
		}
		sc, err := meta.NewSideCar(sidecar)
		if err != nil {
			return nil, fmt.Errorf("objectstore: start: sidecar metadata: %w", err)
		}
		// popts.SideCarDir stays empty: posix.New only checks that it is
		// outside the root (it is) and prints it to stdout.
		ms, metadataStore = sc, "sidecar"
	}

	prevWD, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("objectstore: start: %w", err)
	}
	be, err := posix.New(root, ms, popts)
	if err != nil {
		_ = os.Chdir(prevWD)
		return nil, fmt.Errorf("objectstore: start: posix backend: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{
		endpoint:      "http://" + addr,
		access:        cfg.access,
		secret:        cfg.secret,
		root:          root,
		prevWD:        prevWD,
		cancel:        cancel,
		done:          make(chan struct{}),
		metadataStore: metadataStore,
	}
	rootUser := auth.Account{Access: cfg.access, Secret: cfg.secret, Role: auth.RoleAdmin}
	gwcfg := &embedgw.Config{
		RootUserAccess:    cfg.access,
		RootUserSecret:    cfg.secret,
		Region:            Region,
		Ports:             []string{addr},
		MaxConnections:    4096,
		MaxRequests:       1024, // beyond this versitygw answers 503 SlowDown, which clients retry
		MultipartMaxParts: 10000,
		KeepAlive:         true,
		HealthPath:        HealthPath,
		Quiet:             true,
		LogLevel:          debuglogger.LevelSilent,
		// What embedgw would build, minus its line on stdout.
		IAMService: auth.NewIAMServiceSingle(rootUser),
	}
	go func() {
		defer close(s.done)
		s.runErr = embedgw.RunVersityGW(runCtx, be, gwcfg)
	}()

	if err := s.waitReady(ctx, startTimeout); err != nil {
		s.stop()
		return nil, fmt.Errorf("objectstore: start on %s: %w", addr, err)
	}
	return s, nil
}

// waitReady polls the health path until it answers 200, RunVersityGW
// returns, ctx ends or timeout passes.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+HealthPath, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	err = backoff.Retry(ctx, backoff.Constant(10*time.Millisecond), func() error {
		resp, err := client.Do(req.Clone(ctx))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health check: %s", resp.Status)
		}
		return nil
	}, backoff.RetryIf(func(error) bool { return !s.stopped() }))
	switch {
	case err == nil:
		return nil
	case s.stopped():
		if s.runErr != nil {
			return s.runErr
		}
		return errors.New("gateway stopped during start")
	}
	return fmt.Errorf("not answering: %w", err)
}

// stopped reports whether RunVersityGW returned.
func (s *Server) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Endpoint returns the server's URL, such as "http://127.0.0.1:9000".
func (s *Server) Endpoint() string { return s.endpoint }

// Credentials returns the root access key pair that requests must be signed
// with.
func (s *Server) Credentials() (accessKey, secretKey string) { return s.access, s.secret }

// Close stops the server, waiting for it to shut down (in-flight requests
// get up to 10 s), restores the working directory, and allows another
// Start. It returns the gateway's error, if it failed while running.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.stop()
		running.Store(false)
	})
	return s.closeErr
}

// stop cancels the gateway, waits for it and restores the working directory
// if it still is the posix root.
func (s *Server) stop() error {
	s.cancel()
	<-s.done
	if wd, err := os.Getwd(); err == nil && wd == s.root {
		_ = os.Chdir(s.prevWD)
	}
	if s.runErr != nil && !errors.Is(s.runErr, context.Canceled) {
		return fmt.Errorf("objectstore: %w", s.runErr)
	}
	return nil
}

// resolveAddr fills in a missing host (127.0.0.1) and a zero port (a free
// one), and checks that the address is free. The gateway binds it itself,
// and readiness is its health path answering: another server already on
// the address (an object store of an earlier run still stopping) would
// answer for it, and this one would go on with that one's keys.
func resolveAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	if port == "0" {
		return ln.Addr().String(), nil
	}
	return net.JoinHostPort(host, port), nil // as given: it names the store in presigned URLs
}

type storedCredentials struct {
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

// loadCredentials reads the key pair at path, creating a random one there
// if the file is missing.
func loadCredentials(path string) (access, secret string, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		var c storedCredentials
		if err := json.Unmarshal(data, &c); err != nil || c.AccessKey == "" || c.SecretKey == "" {
			return "", "", fmt.Errorf("credentials %s: malformed", path)
		}
		return c.AccessKey, c.SecretKey, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("credentials: %w", err)
	}
	// 20 and 40 characters, like AWS keys; rand.Text is base32.
	c := storedCredentials{AccessKey: "GP" + rand.Text()[:18], SecretKey: rand.Text() + rand.Text()[:14]}
	data, err = json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return "", "", fmt.Errorf("credentials: %w", err)
	}
	return c.AccessKey, c.SecretKey, nil
}
