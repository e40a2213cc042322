package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/s3"
)

// The Store against a separately started S3 server: versitygw's own
// command, at the version go.mod pins, as its own process with the posix
// backend, reached over TCP like any S3 store in production. It runs the
// conformance checks with path-style and with virtual-host-style
// addressing.
//
// The binary comes from GENPIPE_VERSITYGW when set; otherwise the test
// builds it once per version with `go install
// github.com/versity/versitygw/cmd/versitygw@VERSION` into the user cache
// directory (the module proxy serves versitygw's own dependencies; go.mod
// here lists only those of the packages genpipe embeds). Skipped with -short.

const (
	gwAccess = "genpipe-test-access"
	gwSecret = "genpipe-test-secret-0123456789"
	// gwDomain is the virtual-host domain: bucket.localhost:port addresses
	// a bucket. Nothing resolves *.localhost here, so the clients dial
	// 127.0.0.1 whatever the host (loopbackClient).
	gwDomain = "localhost"
	gwHealth = "/_health" // answers GET without authentication
)

func TestVersityGWProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw as a process (and builds it on first use); run without -short")
	}
	gw := startVersityGW(t, versitygwBinary(t))
	loopback := loopbackClient()
	t.Run("path style", func(t *testing.T) {
		runConformance(t, target{endpoint: "http://" + gw.addr, access: gwAccess, secret: gwSecret,
			opts: []s3.Option{s3.WithPathStyle(true)}})
	})
	t.Run("virtual-host style", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(gw.addr)
		tg := target{endpoint: "http://" + gwDomain + ":" + port, access: gwAccess, secret: gwSecret,
			opts:   []s3.Option{s3.WithPathStyle(false), s3.WithTransport(loopback.Transport)},
			client: loopback}
		u, err := tg.newStore(t, bucket).PresignGet(ctxT(t), "k", time.Minute)
		if want := "http://" + bucket + "." + gwDomain + ":" + port + "/k?"; err != nil || !strings.HasPrefix(u, want) {
			t.Fatalf("presigned URL %s, %v: want it to start with %s", u, err, want)
		}
		runConformance(t, tg)
	})
	if t.Failed() {
		t.Logf("versitygw output:\n%s", gw.output())
	}
}

// loopbackClient dials 127.0.0.1 for every host name, keeping the port, so
// that bucket.localhost:port reaches the gateway.
func loopbackClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	return &http.Client{Transport: tr}
}

// versitygwBinary returns the path of a versitygw binary at the version
// go.mod pins, building it on first use.
func versitygwBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GENPIPE_VERSITYGW"); p != "" {
		return p
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build versitygw with (or set GENPIPE_VERSITYGW to a versitygw binary): %v", err)
	}
	version, modDir := pinnedVersityGW(t, goTool)
	if _, err := os.Stat(filepath.Join(modDir, "cmd", "versitygw", "main.go")); err != nil {
		t.Fatalf("versitygw %s has no cmd/versitygw in the module cache: %v", version, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "genpipe-test", "versitygw-"+version, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// Built into a directory of its own, then renamed: two test runs
	// building at once each get a whole binary.
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(bin), "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	cmd := exec.Command(goTool, "install", "github.com/versity/versitygw/cmd/versitygw@"+version)
	// Outside this module, so versitygw's own go.mod decides its
	// dependencies; GOFLAGS of this build (say, -mod) do not apply there.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install versitygw@%s: %v\n%s", version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "versitygw"), bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built versitygw %s in %v: %s", version, time.Since(start).Round(time.Second), bin)
	return bin
}

// pinnedVersityGW returns the version of versitygw go.mod requires and its
// directory in the module cache.
func pinnedVersityGW(t *testing.T, goTool string) (version, dir string) {
	t.Helper()
	cmd := exec.Command(goTool, "list", "-m", "-f", "{{.Version}} {{.Dir}}", "github.com/versity/versitygw")
	cmd.Dir = startWD // the embedded server moved the working directory
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list versitygw: %v", err)
	}
	version, dir, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok || version == "" || dir == "" {
		t.Fatalf("go list versitygw: %q", out)
	}
	return version, dir
}

type versityGW struct {
	addr string
	cmd  *exec.Cmd
	out  string        // the file its stdout and stderr go to
	done chan struct{} // closed when the process exited
}

func (g *versityGW) output() string {
	b, _ := os.ReadFile(g.out)
	return string(b)
}

// startVersityGW starts the gateway on a free loopback port with the posix
// backend on a temporary directory (metadata in a sidecar directory, so it
// needs no xattrs) and stops it when the test ends.
func startVersityGW(t *testing.T, bin string) *versityGW {
	t.Helper()
	var lastErr error
	for range 3 { // the free port may be taken before the gateway binds it
		gw, err := tryStartVersityGW(t, bin)
		if err == nil {
			return gw
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return nil
}

func tryStartVersityGW(t *testing.T, bin string) (*versityGW, error) {
	dir := t.TempDir()
	root, sidecar := filepath.Join(dir, "root"), filepath.Join(dir, "meta")
	for _, d := range []string{root, sidecar} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	addr := testutil.FreeAddr(t)
	gw := &versityGW{addr: addr, out: filepath.Join(dir, "output"), done: make(chan struct{})}
	out, err := os.Create(gw.out)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the process has its own copy
	gw.cmd = exec.Command(bin,
		"--access", gwAccess, "--secret", gwSecret, "--region", "us-east-1",
		"--port", addr, "--virtual-domain", gwDomain, "--health", gwHealth, "--quiet",
		"posix", "--sidecar", sidecar, root)
	gw.cmd.Stdout, gw.cmd.Stderr = out, out
	if err := gw.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = gw.cmd.Wait(); close(gw.done) }()
	if err := gw.waitReady(15 * time.Second); err != nil {
		gw.stop()
		return nil, fmt.Errorf("%w\n%s", err, gw.output())
	}
	t.Cleanup(gw.stop)
	return gw, nil
}

func (g *versityGW) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if resp, err := client.Get("http://" + g.addr + gwHealth); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-g.done:
			return errors.New("versitygw exited during start")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("versitygw not answering on %s after %v", g.addr, timeout)
}

// stop asks the gateway to exit (SIGTERM), and kills it if it has not
// within 10 s.
func (g *versityGW) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}
