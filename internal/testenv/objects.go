package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/genpipe/genpipe/objectstore"
	"github.com/genpipe/genpipe/s3"
)

// The object store's known credentials and bucket.
const (
	AccessKey = "genpipe-test-access"
	SecretKey = "genpipe-test-secret-0123456789"
	Bucket    = "genpipe-test"
)

// objectStore is the test binary's object store, set by Run before any test
// runs and read by the tests.
var objectStore *objectstore.Server

// Run starts the test binary's object store in a temporary directory,
// creates Bucket on it, runs the tests, then stops the store and removes the
// directory. It returns the exit code for os.Exit; call it from TestMain.
func Run(m *testing.M) int {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	return code
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "genpipe-objects-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if dir, err = filepath.Abs(dir); err != nil { // the store changes the working directory
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := objectstore.Start(ctx, dir, objectstore.WithCredentials(AccessKey, SecretKey))
	if err != nil {
		return 0, err
	}
	defer srv.Close() // before the RemoveAll: it restores the working directory
	st, err := s3.New(srv.Endpoint(), Bucket, AccessKey, SecretKey)
	if err != nil {
		return 0, err
	}
	if err := st.EnsureBucket(ctx); err != nil {
		return 0, err
	}
	objectStore = srv
	defer func() { objectStore = nil }()
	return m.Run(), nil
}

// ObjectStoreEndpoint returns the URL of the test binary's object store,
// which takes AccessKey and SecretKey.
func ObjectStoreEndpoint(t testing.TB) string {
	t.Helper()
	if objectStore == nil {
		t.Fatal("testenv: no object store: run the tests with testenv.Run from TestMain")
	}
	return objectStore.Endpoint()
}

// Objects returns a client of the test binary's object store on Bucket,
// configured with opts.
func Objects(t testing.TB, opts ...s3.Option) *s3.Store {
	t.Helper()
	st, err := s3.New(ObjectStoreEndpoint(t), Bucket, AccessKey, SecretKey, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
