// Package s3 is genpipe's object store client: it implements
// genpipe.ObjectStore on any S3-compatible service (AWS S3, MinIO,
// versitygw). The embedded S3 server of `genpipe objectstore`, `genpipe up`
// and the tests is package objectstore; this package does not depend on it.
//
// Users upload images straight to the store with presigned PUT URLs and read
// slides with presigned GET URLs, so the bytes never pass through the API.
// The store checks every signature (SigV4): a URL is good for one method, one
// key, one content type, for uploads one size, and a limited time.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

var _ genpipe.ObjectStore = (*Store)(nil)

// Store is an S3-compatible object store (AWS S3, MinIO, versitygw) holding
// one bucket. It implements genpipe.ObjectStore. A Store is safe for
// concurrent use.
type Store struct {
	client    *minio.Client // talks to the store
	presigner *minio.Client // signs URLs for browsers; client unless WithPresignEndpoint
	bucket    string
	cfg       options
	own       *http.Transport // the transport New made; nil with WithTransport
}

type options struct {
	region          string
	pathStyle       *bool // nil: minio-go decides by endpoint
	sessionToken    string
	transport       http.RoundTripper
	corsOrigins     []string
	log             *slog.Logger
	presignEndpoint string
}

// Option configures a Store.
type Option func(*options)

// WithRegion sets the region the store signs requests for. Default
// "us-east-1", which MinIO and versitygw use unless configured otherwise.
// Setting it also spares the client a bucket-location lookup, so presigning
// never touches the network.
func WithRegion(region string) Option {
	return func(o *options) { o.region = region }
}

// WithPathStyle chooses path-style URLs (http://host/bucket/key, true) or
// virtual-host style (http://bucket.host/key, false), for requests and
// presigned URLs alike. Default: path style for every endpoint except AWS S3,
// Google Cloud Storage and Aliyun OSS, which get virtual-host style (but
// path style for bucket names with dots over https, which no wildcard
// certificate covers). Path style works with MinIO, versitygw and any
// endpoint without wildcard DNS; virtual-host style needs DNS (and, over
// https, a certificate) for bucket.host, and is the only style newer AWS
// features and regions accept.
func WithPathStyle(pathStyle bool) Option {
	return func(o *options) { o.pathStyle = &pathStyle }
}

// WithSessionToken sets the session token that goes with temporary
// credentials (AWS STS, an assumed role) and signs every request and
// presigned URL with it, overriding the default of none (long-lived keys).
// Temporary credentials expire, and the Store does not renew them: use it
// for runs shorter than the credentials' lifetime, or restart with fresh
// ones.
func WithSessionToken(token string) Option {
	return func(o *options) { o.sessionToken = token }
}

// WithTransport sends the store's requests through rt, overriding minio-go's
// default transport: to trust a private CA, go through a proxy, or dial
// differently in tests. It does not change presigned URLs, which browsers
// fetch on their own.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithCORSOrigins sets the origins EnsureBucket allows in the bucket's CORS
// configuration, so that a web page on another origin may PUT and GET
// objects with presigned URLs. Default ["*"] (any origin: the signature, not
// the origin, is what protects an object). With no origins EnsureBucket
// leaves the bucket's CORS configuration alone, for stores whose operator
// manages it.
func WithCORSOrigins(origins ...string) Option {
	return func(o *options) { o.corsOrigins = origins }
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithPresignEndpoint sets the URL that presigned URLs point to, when
// browsers reach the store under another address than genpipe does (for
// example http://localhost:9000 outside a container network and
// http://minio:9000 inside it). SigV4 signs the host, so a presigned URL
// cannot be rewritten afterwards. Default: the endpoint given to New.
func WithPresignEndpoint(endpoint string) Option {
	return func(o *options) { o.presignEndpoint = endpoint }
}

// Defaults of the settings genpipe's commands use for a store.
const (
	DefaultEndpoint = "http://127.0.0.1:9000" // a local store, as `genpipe objectstore` runs one
	DefaultBucket   = "genpipe"
	DefaultRegion   = "us-east-1" // what MinIO and versitygw use unless configured otherwise
)

// New returns a Store for bucket at endpoint, a URL such as
// http://127.0.0.1:9000 or https://s3.eu-west-1.amazonaws.com, with a static
// access key pair. It does not contact the store: see EnsureBucket and Ping.
func New(endpoint, bucket, accessKey, secretKey string, opts ...Option) (*Store, error) {
	cfg := options{
		region:      DefaultRegion,
		corsOrigins: []string{"*"},
		log:         slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if bucket == "" {
		return nil, errors.New("s3: new: empty bucket name")
	}
	var own *http.Transport
	if cfg.transport == nil {
		// minio-go's own default, made here so that CloseIdleConnections
		// can reach it.
		u, _ := url.Parse(endpoint) // newClient reports a bad endpoint
		tr, err := minio.DefaultTransport(u != nil && u.Scheme == "https")
		if err != nil {
			return nil, fmt.Errorf("s3: transport: %w", err)
		}
		own, cfg.transport = tr, tr
	}
	client, err := newClient(endpoint, accessKey, secretKey, cfg)
	if err != nil {
		return nil, err
	}
	presigner := client
	if cfg.presignEndpoint != "" {
		if presigner, err = newClient(cfg.presignEndpoint, accessKey, secretKey, cfg); err != nil {
			return nil, err
		}
	}
	return &Store{client: client, presigner: presigner, bucket: bucket, cfg: cfg, own: own}, nil
}

// CloseIdleConnections closes the store's connections that carry no
// request, as http.Client's does; later requests open new ones. Call it
// when done with the store: a connection left open keeps a server that is
// shutting down waiting for it (versitygw waits 10 s, then says so on
// stderr). A transport given with WithTransport is its owner's to close.
func (s *Store) CloseIdleConnections() {
	if s.own != nil {
		s.own.CloseIdleConnections()
	}
}

// maxTries is how many times the client tries a failed request (with
// backoff) before giving up: enough for a store that restarts or throttles
// briefly, few enough that a dead store is reported within about a second
// (the callers have retries of their own).
const maxTries = 3

func newClient(endpoint, accessKey, secretKey string, cfg options) (*minio.Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("s3: endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("s3: endpoint %q: want http(s)://host[:port]", endpoint)
	}
	lookup := minio.BucketLookupAuto
	if cfg.pathStyle != nil && *cfg.pathStyle {
		lookup = minio.BucketLookupPath
	} else if cfg.pathStyle != nil {
		lookup = minio.BucketLookupDNS
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(accessKey, secretKey, cfg.sessionToken),
		Secure:       u.Scheme == "https",
		Transport:    cfg.transport,
		Region:       cfg.region,
		BucketLookup: lookup,
		MaxRetries:   maxTries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: client for %s: %w", endpoint, err)
	}
	return client, nil
}

// Bucket returns the name of the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// EnsureBucket creates the bucket if it is missing and sets its CORS
// configuration (see WithCORSOrigins): browsers may PUT (with a Content-Type
// header), GET and HEAD objects through presigned URLs, and read the ETag.
// It is idempotent; run it at start-up.
func (s *Store) EnsureBucket(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.fail("ensure bucket", s.bucket, err)
	}
	if !exists {
		err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.cfg.region})
		// Another process may have created it since BucketExists.
		if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" {
			return s.fail("create bucket", s.bucket, err)
		}
		s.cfg.log.Info("s3: created bucket", "bucket", s.bucket)
	}
	if len(s.cfg.corsOrigins) == 0 {
		return nil
	}
	config := cors.NewConfig([]cors.Rule{{
		ID:            "genpipe-presigned",
		AllowedOrigin: s.cfg.corsOrigins,
		AllowedMethod: []string{http.MethodGet, http.MethodHead, http.MethodPut},
		AllowedHeader: []string{"*"},
		ExposeHeader:  []string{"ETag"},
		MaxAgeSeconds: 3600,
	}})
	if err := s.client.SetBucketCors(ctx, s.bucket, config); err != nil {
		return s.fail("set cors of bucket", s.bucket, err)
	}
	s.cfg.log.Debug("s3: set bucket cors", "bucket", s.bucket, "origins", s.cfg.corsOrigins)
	return nil
}

// PresignPut returns a URL that accepts PUTs of key until ttl passes (1 s to
// 7 days). The headers h are part of the signature: a PUT must send exactly
// h.ContentType, and when h.ContentLength is set exactly that many bytes
// (Content-Length is a signed header like any other: SigV4 stores recompute
// it from the request and refuse another with 403, before storing
// anything). S3 needs a Content-Length on every PUT that is not chunked
// with signed chunks, which a presigned URL cannot make, so a PUT cannot
// send more than its header says.
func (s *Store) PresignPut(ctx context.Context, key string, h genpipe.PutHeaders, ttl time.Duration) (string, error) {
	switch {
	case h.ContentType == "":
		return "", fmt.Errorf("s3: presign put %s: %w", key, genpipe.Errorf(genpipe.EINVALID, "a content type is required"))
	case h.ContentLength < 0:
		return "", fmt.Errorf("s3: presign put %s: %w", key, genpipe.Errorf(genpipe.EINVALID, "content length %d: want 0 (open) or more", h.ContentLength))
	}
	signed := http.Header{}
	for k, v := range h.Header() {
		signed.Set(k, v)
	}
	u, err := s.presigner.PresignHeader(ctx, http.MethodPut, s.bucket, key, ttl, nil, signed)
	if err != nil {
		return "", fmt.Errorf("s3: presign put %s: %w", key, err)
	}
	return u.String(), nil
}

// PresignGet returns a URL that reads key until ttl passes (1 s to 7 days).
// It does not check that the object exists.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	u, err := s.presigner.PresignedGetObject(ctx, s.bucket, key, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("s3: presign get %s: %w", key, err)
	}
	return u.String(), nil
}

// Stat returns the object's metadata, or an ENOTFOUND error when there is no
// such object, or an EUNAVAILABLE error when the store cannot be reached.
func (s *Store) Stat(ctx context.Context, key string) (genpipe.ObjectInfo, error) {
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return genpipe.ObjectInfo{}, s.fail("stat", key, err)
	}
	return genpipe.ObjectInfo{Key: key, Size: info.Size, ContentType: info.ContentType}, nil
}

// Copy copies src to dst inside the bucket (CopyObject: the bytes never
// leave the store), reading no metadata back. S3 copies an object as it was
// at one moment: a PUT to src during the copy either precedes all of it or
// none of it. Missing src is an ENOTFOUND error.
func (s *Store) Copy(ctx context.Context, src, dst string) error {
	_, err := s.client.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: dst},
		minio.CopySrcOptions{Bucket: s.bucket, Object: src})
	if err != nil {
		return s.fail("copy", src, err)
	}
	return nil
}

// Delete removes the object at key; a missing one is no error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.fail("delete", key, err)
	}
	return nil
}

// Ping checks that the store answers and the bucket exists. Either failure
// is an EUNAVAILABLE error: genpipe cannot serve without its bucket.
func (s *Store) Ping(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.fail("ping", s.bucket, err)
	}
	if !exists {
		return fmt.Errorf("s3: ping: %w",
			genpipe.Errorf(genpipe.EUNAVAILABLE, "the object store has no bucket %s", s.bucket))
	}
	return nil
}

// Put stores body under key with the given content type, replacing any
// object there. Tests and tools use it; users upload with PresignPut.
func (s *Store) Put(ctx context.Context, key, contentType string, body []byte) error {
	_, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

// Get returns the object's bytes, or an ENOTFOUND error.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	defer obj.Close()
	body, err := io.ReadAll(obj) // the request happens here
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	return body, nil
}

// fail wraps err with what failed and, where the cause is known, a genpipe
// error code: ENOTFOUND for a missing object, EUNAVAILABLE for a store that
// cannot be reached, is overloaded or timed out. Both errors stay in the
// chain, so genpipe.ErrorCode and errors.As see each.
func (s *Store) fail(op, name string, err error) error {
	var gerr *genpipe.Error
	resp := minio.ToErrorResponse(err)
	var netErr net.Error
	switch {
	case resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket"):
		gerr = genpipe.Errorf(genpipe.ENOTFOUND, "object %s not found", name)
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway ||
		resp.StatusCode == http.StatusGatewayTimeout || resp.Code == "SlowDown":
		gerr = genpipe.Errorf(genpipe.EUNAVAILABLE, "the object store is overloaded; retry later")
	case errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded):
		gerr = genpipe.Errorf(genpipe.EUNAVAILABLE, "the object store is unavailable; retry later")
	default:
		return fmt.Errorf("s3: %s %s: %w", op, name, err)
	}
	s.cfg.log.Debug("s3: request failed", "op", op, "name", name, "code", gerr.Code, "err", err)
	return fmt.Errorf("s3: %s %s: %w: %w", op, name, gerr, err)
}
