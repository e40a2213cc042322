// Package netguard tells public addresses from the ones inside a network
// (loopback, private, link-local, ...), and dials only public ones. Webhook
// URLs are chosen by users: without it a user could make the notifier call
// a cloud's metadata endpoint or an admin port on loopback.
package netguard

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// internalPrefixes are ranges that netip's predicates do not name but that
// reach inside a network all the same.
var internalPrefixes = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},               // 0.x.x.x reaches the local host on Linux
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"}, // also some clouds' metadata (100.100.100.200)
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
}

// Kind says what kind of non-public address addr is, or "" for a public
// one. An IPv4-mapped IPv6 address is judged as the IPv4 address.
func Kind(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	switch {
	case addr.IsLoopback():
		return "a loopback address"
	case addr.IsPrivate():
		return "a private address"
	case addr.IsLinkLocalUnicast():
		return "a link-local address"
	case addr.IsUnspecified():
		return "the unspecified address"
	case addr.IsMulticast():
		return "a multicast address"
	}
	for _, p := range internalPrefixes {
		if p.prefix.Contains(addr) {
			return p.kind
		}
	}
	return ""
}

// PublicDialer returns a dialer that refuses to connect to a non-public
// address. It checks the address it is about to connect to, after DNS,
// so a name that resolved to a public address when a URL was accepted and
// to an internal one now (DNS rebinding) is refused too.
func PublicDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: refuseInternal}
}

func refuseInternal(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: dial %s: %w", address, err)
	}
	if kind := Kind(ap.Addr()); kind != "" {
		return fmt.Errorf("netguard: refusing to dial %s: it is %s", address, kind)
	}
	return nil
}
