package sqlstore_test

import (
	"context"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlstore"
)

// The PostgreSQL tests need a server: GENPIPE_TEST_POSTGRES_URL names it,
// as a postgres:// URL (scripts/pgtest.sh starts a throwaway one and
// prints the variable). Each test works in a schema of its own, created
// for it and dropped after it, named in the store's URL as search_path:
// much faster than a database per test (CREATE DATABASE copies a template
// and syncs it to disk), and as isolated, since every statement of the
// store names its tables unqualified. Tests in parallel each get their own.
const (
	urlEnv     = "GENPIPE_TEST_POSTGRES_URL"
	requireEnv = "GENPIPE_REQUIRE_POSTGRES"
)

// The next tests need no server.

func TestPostgresOpenBadURL(t *testing.T) {
	_, err := sqlstore.Open(t.Context(), "postgres://user:secret@host:notaport/db")
	checkCode(t, "Open with a bad URL", err, genpipe.EINVALID)
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestPostgresOpenServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := sqlstore.Open(ctx, "postgresql://postgres:secret@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	if err == nil {
		s.Close()
		t.Fatal("Open of a server that is down succeeded")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// serverURL returns GENPIPE_TEST_POSTGRES_URL, or skips the test loudly
// (fails it when GENPIPE_REQUIRE_POSTGRES is set). go test shows skips only
// with -v: scripts/pgtest.sh is what warns when it cannot start a server.
func serverURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(urlEnv)
	if url != "" {
		return url
	}
	msg := "!!! no PostgreSQL: " + urlEnv + " is not set, so the PostgreSQL status store is NOT TESTED." +
		" Run scripts/pgtest.sh start (or scripts/test.sh, which does) to start a local server."
	if os.Getenv(requireEnv) != "" {
		t.Fatal(msg + " (" + requireEnv + " is set)")
	}
	t.Skip(msg)
	return ""
}

// freshSchema creates an empty schema on the server at base for the test,
// drops it when the test ends, and returns a URL whose connections use it.
func freshSchema(t testing.TB, base string) string {
	t.Helper()
	u, err := neturl.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s is not a postgres:// URL: %v", urlEnv, err)
	}
	schema := "genpipe_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	admin, err := pgx.Connect(t.Context(), withoutPoolParams(u))
	if err != nil {
		t.Fatalf("connect to %s: %v", urlEnv, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { // after the stores are closed: t.Cleanup runs last first
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, withoutPoolParams(u))
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	// pgx sends search_path to the server as a run-time parameter.
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// withoutPoolParams returns u without the parameters that configure
// pgxpool (pool_max_conns, ...), which a single connection sends to the
// server, which refuses them: the tests' URL may size the stores' pools.
func withoutPoolParams(u *neturl.URL) string {
	c := *u
	q := c.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// A PostgreSQL store opens up to DefaultPostgresMaxConns connections, or
// as many as its URL's pool_max_conns says.
func TestPostgresPoolSize(t *testing.T) {
	url := freshSchema(t, serverURL(t))
	if got := open(t, url).WriteDB().Stats().MaxOpenConnections; got != sqlstore.DefaultPostgresMaxConns {
		t.Errorf("a store's pool holds %d connections; want DefaultPostgresMaxConns, %d", got, sqlstore.DefaultPostgresMaxConns)
	}
	if got := open(t, url+"&pool_max_conns=3").WriteDB().Stats().MaxOpenConnections; got != 3 {
		t.Errorf("with pool_max_conns=3, a store's pool holds %d connections; want 3", got)
	}
}

// A value PostgreSQL refuses whatever the retry (text with NUL, which JSON
// can carry) is an EINVALID error, so that callers set it aside instead of
// retrying it for ever; see the dispatcher's and the notifier's handling.
func TestPostgresRefusedDataIsInvalid(t *testing.T) {
	s := open(t, freshSchema(t, serverURL(t)))
	task := genpipe.Task{Stage: genpipe.StageCheck, RequestID: uuid.NewString() + "\x00", Value: []byte("{}"),
		Share: genpipe.Share{}.Normalized()}
	err := s.EnqueueTasks(t.Context(), []genpipe.Task{task})
	if genpipe.ErrorCode(err) != genpipe.EINVALID || !strings.Contains(err.Error(), "22021") {
		t.Errorf("EnqueueTasks with a NUL in the request id = %v; want EINVALID with the server's code", err)
	}
}
