// Package netguard tells public addresses from the ones a public host
// cannot have (loopback, private, link-local, documentation, reserved, and
// IPv6 forms that carry an IPv4 address inside), and dials only public
// ones. Webhook URLs are chosen by users: without it a user could make the
// notifier call a cloud's metadata endpoint or an admin port on loopback.
//
// "Public" follows the IANA special-purpose address registries (IPv4 and
// IPv6, RFC 6890 and later): an address in a block whose "Globally
// Reachable" is not True is not public, nor are multicast addresses and
// IPv6 outside the global unicast space 2000::/3.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// block is one entry of the special-purpose registries: kind names it in
// refusals; public marks a globally reachable block inside a larger one
// that is not (an anycast service, say). The most specific block holding
// an address decides.
type block struct {
	prefix netip.Prefix
	kind   string
	public bool
}

func internal(prefix, kind string) block { return block{netip.MustParsePrefix(prefix), kind, false} }
func reachable(prefix, kind string) block {
	return block{netip.MustParsePrefix(prefix), kind, true}
}

// blocks4 is the IPv4 special-purpose registry's blocks that are not
// globally reachable, the exceptions inside them, and multicast.
var blocks4 = []block{
	internal("0.0.0.0/8", "a \"this network\" address"), // 0.x.x.x reaches the local host on Linux
	internal("10.0.0.0/8", "a private address"),
	internal("100.64.0.0/10", "a shared (carrier-grade NAT) address"), // also some clouds' metadata (100.100.100.200)
	internal("127.0.0.0/8", "a loopback address"),
	internal("169.254.0.0/16", "a link-local address"), // clouds' metadata (169.254.169.254)
	internal("172.16.0.0/12", "a private address"),
	internal("192.0.0.0/24", "an IETF protocol assignment"),
	reachable("192.0.0.9/32", "the PCP anycast address"),
	reachable("192.0.0.10/32", "the TURN anycast address"),
	internal("192.0.2.0/24", "a documentation address (TEST-NET-1)"),
	internal("192.88.99.0/24", "a deprecated 6to4 relay anycast address"),
	internal("192.168.0.0/16", "a private address"),
	internal("198.18.0.0/15", "a benchmarking address"),
	internal("198.51.100.0/24", "a documentation address (TEST-NET-2)"),
	internal("203.0.113.0/24", "a documentation address (TEST-NET-3)"),
	internal("224.0.0.0/4", "a multicast address"),
	internal("240.0.0.0/4", "a reserved address"),
	internal("255.255.255.255/32", "the broadcast address"),
}

// blocks6 is the same for IPv6. The IPv4-mapped block and the NAT64
// well-known prefix are judged by the IPv4 address they carry (see Kind);
// every other form that carries one is refused as such, since the network
// that would unwrap it (a 6to4 relay, a Teredo server, a local translator)
// may deliver to an internal IPv4 address.
var blocks6 = []block{
	internal("::/128", "the unspecified address"),
	internal("::1/128", "a loopback address"),
	internal("::/96", "an IPv4-compatible address (deprecated; it carries an IPv4 address)"),
	internal("::ffff:0:0:0/96", "an IPv4-translated address (SIIT; it carries an IPv4 address)"),
	internal("64:ff9b:1::/48", "a local-use NAT64 address (it carries an IPv4 address)"),
	internal("100::/64", "a discard-only address"),
	internal("100:0:0:1::/64", "a dummy address"),
	internal("2001::/23", "an IETF protocol assignment"),
	internal("2001::/32", "a Teredo address (it carries an IPv4 address)"),
	reachable("2001:1::1/128", "the PCP anycast address"),
	reachable("2001:1::2/128", "the TURN anycast address"),
	reachable("2001:1::3/128", "the DNS-SD SRP anycast address"),
	internal("2001:2::/48", "a benchmarking address"),
	reachable("2001:3::/32", "an AMT address"),
	reachable("2001:4:112::/48", "an AS112 address"),
	internal("2001:10::/28", "a deprecated ORCHID address"),
	reachable("2001:20::/28", "an ORCHIDv2 address"),
	reachable("2001:30::/28", "a drone remote ID address"),
	internal("2001:db8::/32", "a documentation address"),
	internal("2002::/16", "a 6to4 address (it carries an IPv4 address)"),
	internal("3fff::/20", "a documentation address"),
	internal("5f00::/16", "a segment routing (SRv6) SID"),
	internal("fc00::/7", "a unique local (private) address"),
	internal("fe80::/10", "a link-local address"),
	internal("fec0::/10", "a site-local address (deprecated)"),
	internal("ff00::/8", "a multicast address"),
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052's well-known prefix: globally reachable
)

// Kind says what kind of non-public address addr is, or "" for a public
// one. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, how Go often writes an
// IPv4 address) and a NAT64 address of the well-known prefix
// (64:ff9b::a.b.c.d, what DNS64 answers on an IPv6-only network) are judged
// by the IPv4 address they carry. A zone is ignored.
func Kind(addr netip.Addr) string {
	addr = addr.WithZone("")
	switch {
	case !addr.IsValid():
		return "not an IP address"
	case addr.Is4In6():
		return Kind(addr.Unmap())
	case nat64.Contains(addr):
		b := addr.As16()
		if kind := Kind(netip.AddrFrom4([4]byte(b[12:]))); kind != "" {
			return "a NAT64 address of " + kind
		}
		return ""
	}
	blocks := blocks4
	if addr.Is6() {
		blocks = blocks6
	}
	var found *block
	for i, b := range blocks {
		if b.prefix.Contains(addr) && (found == nil || b.prefix.Bits() > found.prefix.Bits()) {
			found = &blocks[i]
		}
	}
	switch {
	case found != nil && !found.public:
		return found.kind
	case found == nil && addr.Is6() && !globalUnicast6.Contains(addr):
		return "a reserved address" // IANA allocates IPv6 unicast from 2000::/3 only
	}
	return ""
}

// RefusedError is the error of a dial to a non-public address: the
// refusal is final, as retrying dials the same address.
type RefusedError struct {
	Addr netip.AddrPort
	Kind string // what Kind said of it
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("netguard: refusing to dial %s: it is %s", e.Addr, e.Kind)
}

// Refused reports whether err is, or wraps, a RefusedError.
func Refused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// PublicDialer returns a dialer that refuses to connect to a non-public
// address with a RefusedError. It checks the address it is about to
// connect to, after DNS, so a name that resolved to a public address when
// a URL was accepted and to an internal one now (DNS rebinding) is refused
// too.
func PublicDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: refuseInternal}
}

func refuseInternal(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: dial %s: %w", address, err)
	}
	if kind := Kind(ap.Addr()); kind != "" {
		return &RefusedError{Addr: ap, Kind: kind}
	}
	return nil
}
