package s3

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

// serverRegion is the region the embedded server signs for: the default of
// Store (WithRegion).
const serverRegion = "us-east-1"

// running guards the process-wide embedgw singleton before StartServer
// touches anything: posix.New changes the process's working directory, which
// would break a server that is already running.
var running atomic.Bool

// Server is an embedded S3 server: versitygw (embedgw) with its posix
// backend, storing each object as a file, checking every request's SigV4
// signature and each bucket's CORS configuration.
//
// Only one Server may run per process: embedgw keeps package-level state,
// and its posix backend resolves paths against the process's working
// directory, which StartServer changes to the server's bucket directory
// until Close restores it. Relative paths opened while a Server runs resolve
// there, so make paths absolute before starting one. A Server may be started
// again, on the same or another directory, after Close returns.
type Server struct {
	endpoint      string
	access        string
	secret        string
	root          string // the posix root
	prevWD        string // the working directory before StartServer
	cancel        context.CancelFunc
	done          chan struct{} // closed when RunVersityGW returns
	runErr        error         // what RunVersityGW returned; read after done
	closeOnce     sync.Once
	closeErr      error
	log           *slog.Logger
	metadataStore string // "xattr" or "sidecar"
}

type serverOptions struct {
	addr         string
	access       string
	secret       string
	log          *slog.Logger
	startTimeout time.Duration
	forceSidecar bool // for tests of the fallback on filesystems with xattrs
}

// ServerOption configures a Server.
type ServerOption func(*serverOptions)

// WithAddr sets the address the server listens on. Default "127.0.0.1:0": a
// free loopback port, chosen by listening on port 0 and closing the listener
// before embedgw opens its own (so another process could, rarely, take it
// in between). A missing host (":9000") means 127.0.0.1; an explicit host
// is used as given.
func WithAddr(addr string) ServerOption {
	return func(o *serverOptions) { o.addr = addr }
}

// WithCredentials sets the root access key pair that requests must be
// signed with. Default: a random pair, generated on the first start and kept
// in the directory's credentials.json (mode 0600), so a restart on the same
// directory keeps it; read it with Server.Credentials.
func WithCredentials(accessKey, secretKey string) ServerOption {
	return func(o *serverOptions) { o.access, o.secret = accessKey, secretKey }
}

// WithServerLogger sets the logger for the server's own messages (start,
// stop, metadata store). Default: discard. versitygw's banner and request
// logs are always off.
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(o *serverOptions) { o.log = l }
}

// WithStartTimeout bounds how long StartServer waits for the server to
// answer. Default 10 s.
func WithStartTimeout(d time.Duration) ServerOption {
	return func(o *serverOptions) { o.startTimeout = d }
}

// StartServer starts an S3 server storing its data under dir (created if
// missing): buckets in dir/buckets, metadata in user xattrs or, where the
// filesystem has none, in dir/meta, and generated credentials in
// dir/credentials.json. It returns once the server answers HTTP requests.
// ctx bounds the start only; the server runs until Close.
func StartServer(ctx context.Context, dir string, opts ...ServerOption) (*Server, error) {
	cfg := serverOptions{
		addr:         "127.0.0.1:0",
		log:          slog.New(slog.DiscardHandler),
		startTimeout: 10 * time.Second,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if (cfg.access == "") != (cfg.secret == "") {
		return nil, errors.New("s3: start server: give both an access key and a secret key, or neither")
	}
	if !running.CompareAndSwap(false, true) {
		return nil, errors.New("s3: start server: a server is already running in this process (embedgw allows one)")
	}
	s, err := startServer(ctx, dir, cfg)
	if err != nil {
		running.Store(false)
		return nil, err
	}
	return s, nil
}

func startServer(ctx context.Context, dir string, cfg serverOptions) (_ *Server, err error) {
	// Absolute paths first: posix.New changes the working directory.
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("s3: start server: %w", err)
	}
	root := filepath.Join(dir, bucketsDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("s3: start server: %w", err)
	}
	if cfg.access == "" {
		if cfg.access, cfg.secret, err = loadCredentials(filepath.Join(dir, credentialsFile)); err != nil {
			return nil, fmt.Errorf("s3: start server: %w", err)
		}
	}
	addr, err := resolveAddr(cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("s3: start server: %w", err)
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
	}
	metadataStore := "xattr"
	sidecar := filepath.Join(dir, sidecarDir)
	_, statErr := os.Stat(sidecar)
	if cfg.forceSidecar || statErr == nil || (meta.XattrMeta{}).Test(root) != nil {
		if err := os.MkdirAll(sidecar, 0o755); err != nil {
			return nil, fmt.Errorf("s3: start server: %w", err)
		}
		sc, err := meta.NewSideCar(sidecar)
		if err != nil {
			return nil, fmt.Errorf("s3: start server: sidecar metadata: %w", err)
		}
		// popts.SideCarDir stays empty: posix.New only checks that it is
		// outside the root (it is) and prints it to stdout.
		ms, metadataStore = sc, "sidecar"
	}

	prevWD, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("s3: start server: %w", err)
	}
	be, err := posix.New(root, ms, popts)
	if err != nil {
		_ = os.Chdir(prevWD)
		return nil, fmt.Errorf("s3: start server: posix backend: %w", err)
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
		log:           cfg.log,
		metadataStore: metadataStore,
	}
	rootUser := auth.Account{Access: cfg.access, Secret: cfg.secret, Role: auth.RoleAdmin}
	gwcfg := &embedgw.Config{
		RootUserAccess:    cfg.access,
		RootUserSecret:    cfg.secret,
		Region:            serverRegion,
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

	if err := s.waitReady(ctx, cfg.startTimeout); err != nil {
		s.stop()
		return nil, fmt.Errorf("s3: start server on %s: %w", addr, err)
	}
	s.log.Info("s3: server started", "endpoint", s.endpoint, "dir", dir, "metadata", metadataStore)
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
// StartServer. It returns the gateway's error, if it failed while running.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.stop()
		running.Store(false)
		s.log.Info("s3: server stopped", "endpoint", s.endpoint)
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
		return fmt.Errorf("s3: server: %w", s.runErr)
	}
	return nil
}

// resolveAddr fills in a missing host (127.0.0.1) and a zero port (a free
// one).
func resolveAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if port != "0" {
		return net.JoinHostPort(host, port), nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
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
