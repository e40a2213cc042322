package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/genpipe/genpipe/netguard"
)

// kindCases are addresses and a word of what Kind must say of them; ""
// for a public address. Each special-purpose block of the IANA registries
// has its first and last address here, and the public neighbours of some.
var kindCases = []struct {
	addr, want string
}{
	// IPv4, the classic ranges
	{"127.0.0.1", "loopback"}, {"127.255.255.255", "loopback"},
	{"10.1.2.3", "private"}, {"172.16.0.1", "private"}, {"172.31.255.255", "private"}, {"192.168.1.1", "private"},
	{"169.254.169.254", "link-local"}, {"0.0.0.0", "this network"}, {"0.1.2.3", "this network"},
	{"100.64.0.0", "shared"}, {"100.100.100.200", "shared"}, {"100.127.255.255", "shared"},
	{"224.0.0.1", "multicast"}, {"239.255.255.255", "multicast"},
	// IPv4, the special-purpose ranges
	{"192.0.0.0", "IETF protocol"}, {"192.0.0.8", "IETF protocol"}, {"192.0.0.170", "IETF protocol"}, {"192.0.0.255", "IETF protocol"},
	{"192.0.2.0", "documentation"}, {"192.0.2.255", "documentation"},
	{"198.51.100.7", "documentation"}, {"203.0.113.255", "documentation"},
	{"198.18.0.0", "benchmarking"}, {"198.19.255.255", "benchmarking"},
	{"192.88.99.1", "6to4 relay"},
	{"240.0.0.1", "reserved"}, {"254.255.255.255", "reserved"}, {"255.255.255.254", "reserved"},
	{"255.255.255.255", "broadcast"},
	// IPv4, public: neighbours of the ranges, and the registry's globally reachable exceptions
	{"8.8.8.8", ""}, {"1.1.1.1", ""}, {"93.184.215.14", ""}, {"100.63.255.255", ""}, {"100.128.0.1", ""},
	{"172.15.255.255", ""}, {"172.32.0.0", ""}, {"192.0.1.255", ""}, {"192.0.3.0", ""}, {"198.17.255.255", ""},
	{"198.20.0.0", ""}, {"223.255.255.255", ""}, {"192.0.0.9", ""}, {"192.0.0.10", ""},
	{"192.31.196.1", ""}, {"192.52.193.1", ""}, {"192.175.48.1", ""},

	// IPv6, the classic ranges
	{"::1", "loopback"}, {"::", "unspecified"}, {"fd00::1", "unique local"}, {"fc00::1", "unique local"},
	{"fe80::1", "link-local"}, {"fe80::1%eth0", "link-local"}, {"fec0::1", "site-local"}, {"ff02::1", "multicast"},
	// IPv6 that carries an IPv4 address
	{"::ffff:127.0.0.1", "loopback"}, {"::ffff:10.0.0.1", "private"}, {"::ffff:169.254.169.254", "link-local"},
	{"::ffff:192.0.2.1", "documentation"},
	{"::127.0.0.1", "IPv4-compatible"}, {"::8.8.8.8", "IPv4-compatible"}, {"::10.0.0.1", "IPv4-compatible"},
	{"::ffff:0:127.0.0.1", "IPv4-translated"}, {"::ffff:0:8.8.8.8", "IPv4-translated"},
	{"64:ff9b::127.0.0.1", "NAT64 address of a loopback"}, {"64:ff9b::10.0.0.1", "NAT64 address of a private"},
	{"64:ff9b::169.254.169.254", "NAT64 address of a link-local"}, {"64:ff9b::198.18.0.1", "NAT64 address of a benchmarking"},
	{"64:ff9b:1::127.0.0.1", "local-use NAT64"}, {"64:ff9b:1::8.8.8.8", "local-use NAT64"},
	{"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "local-use NAT64"},
	{"2002:7f00:1::1", "6to4"}, {"2002:808:808::1", "6to4"}, {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4"},
	{"2001::1", "Teredo"}, {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"}, {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "Teredo"},
	// IPv6, the special-purpose ranges
	{"100::1", "discard"}, {"100::ffff:ffff:ffff:ffff", "discard"}, {"100:0:0:1::1", "dummy"},
	{"2001:1::4", "IETF protocol"}, {"2001:2::1", "benchmarking"}, {"2001:10::1", "ORCHID"},
	{"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "IETF protocol"},
	{"2001:db8::1", "documentation"}, {"3fff::1", "documentation"}, {"3fff:fff:ffff::1", "documentation"},
	{"5f00::1", "segment routing"}, {"4000::1", "reserved"}, {"1000::1", "reserved"}, {"::1:0:0:1", "reserved"},
	// IPv6, public
	{"2606:4700:4700::1111", ""}, {"2001:4860:4860::8888", ""}, {"2a00:1450:4001:80b::200e", ""},
	{"64:ff9b::8.8.8.8", ""}, {"::ffff:8.8.8.8", ""}, {"2001:200::1", ""}, {"2001:db7:ffff::1", ""}, {"2001:db9::1", ""},
	{"2001:1::1", ""}, {"2001:1::2", ""}, {"2001:1::3", ""}, {"2001:3::1", ""}, {"2001:4:112::1", ""},
	{"2001:20::1", ""}, {"2001:3f:ffff::1", ""}, {"2003::1", ""}, {"3ffe::1", ""}, {"3fff:1000::1", ""},
}

func TestKind(t *testing.T) {
	for _, tc := range kindCases {
		got := netguard.Kind(netip.MustParseAddr(tc.addr))
		switch {
		case tc.want == "" && got != "":
			t.Errorf("Kind(%s) = %q; want public", tc.addr, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("Kind(%s) = %q; want it to say %q", tc.addr, got, tc.want)
		}
	}
	if got := netguard.Kind(netip.Addr{}); got == "" {
		t.Error("Kind of the zero Addr is public; want it refused")
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
		} else if !strings.Contains(err.Error(), "refusing to dial") || !netguard.Refused(err) {
			t.Errorf("GET %s: %v; want a RefusedError naming the address", url, err)
		}
	}
}

// The dialer refuses every non-public form before connecting: the check
// runs on the socket's address, so nothing is sent, whichever form the
// address was written in.
func TestPublicDialerRefusesEveryForm(t *testing.T) {
	d := netguard.PublicDialer(time.Second)
	for _, tc := range kindCases {
		if tc.want == "" || strings.Contains(tc.addr, "%") {
			continue
		}
		addr := net.JoinHostPort(tc.addr, "9")
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		conn, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			t.Errorf("dial %s succeeded; want it refused", addr)
			continue
		}
		switch {
		case errors.Is(err, syscall.EAFNOSUPPORT): // a host without IPv6 makes no socket to check
			t.Logf("dial %s: %v", addr, err)
		case !netguard.Refused(err):
			t.Errorf("dial %s: %v; want a RefusedError", addr, err)
		}
	}
}
