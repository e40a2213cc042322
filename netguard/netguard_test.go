package netguard_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe/netguard"
)

func TestKind(t *testing.T) {
	for addr, internal := range map[string]bool{
		"127.0.0.1": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true,
		"fd00::1": true, "169.254.169.254": true, "fe80::1": true, "0.0.0.0": true, "::": true,
		"224.0.0.1": true, "0.1.2.3": true, "100.100.100.200": true, "255.255.255.255": true,
		"::ffff:127.0.0.1": true, "::ffff:10.0.0.1": true,
		"8.8.8.8": false, "1.1.1.1": false, "2606:4700:4700::1111": false, "100.128.0.1": false,
	} {
		if got := netguard.Kind(netip.MustParseAddr(addr)); (got != "") != internal {
			t.Errorf("Kind(%s) = %q; want internal=%v", addr, got, internal)
		}
	}
}

// The dialer refuses the address it is about to connect to, whatever name
// led there.
func TestPublicDialerRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: netguard.PublicDialer(time.Second).DialContext}}
	for _, url := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s through the public dialer succeeded; want it refused", url)
		} else if !strings.Contains(err.Error(), "refusing to dial") {
			t.Errorf("GET %s: %v; want a refusal naming the address", url, err)
		}
	}
}
