package api

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/netguard"
)

// maxWebhookURL bounds a webhook URL, in bytes.
const maxWebhookURL = 2048

// resolveTimeout bounds the DNS lookup of a webhook host: the client waits
// for it.
const resolveTimeout = 2 * time.Second

// parseWebhookURL checks the form of a webhook URL; "" is no webhook.
func parseWebhookURL(raw string) (*url.URL, error) {
	if len(raw) > maxWebhookURL {
		return nil, genpipe.Errorf(genpipe.EINVALID, "webhookUrl is over %d characters", maxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, genpipe.Errorf(genpipe.EINVALID, "webhookUrl %q is not an absolute http(s) URL", raw)
	}
	return u, nil
}

// checkWebhookHost refuses a webhook whose host is, or resolves to, an
// address inside a private network, unless configuration allows those: a
// client must not make the notifier call services it cannot reach itself
// (a cloud's metadata endpoint, an admin port on loopback). Every address
// the name resolves to must be public, as the sender may dial any of them.
//
// The check is at submission; DNS may answer differently when the notifier
// sends, so the sender has to check the address it dials as well.
func (s *Server) checkWebhookHost(ctx context.Context, raw string) error {
	if raw == "" || s.cfg.allowPrivate {
		return nil
	}
	u, err := parseWebhookURL(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	addrs, err := s.resolve(ctx, host)
	if err != nil {
		return err
	}
	for _, addr := range addrs {
		if kind := netguard.Kind(addr); kind != "" {
			return genpipe.Errorf(genpipe.EINVALID,
				"webhookUrl host %q is %s (%s): webhooks may not call private networks; use a public address", host, kind, addr)
		}
	}
	return nil
}

// resolve returns host's addresses: host itself when it is an IP address.
func (s *Server) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if addr, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{addr}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := s.cfg.lookupNetIP(ctx, host)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(addrs) > 0:
		return addrs, nil
	case err == nil, errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return nil, genpipe.Errorf(genpipe.EINVALID, "webhookUrl host %q does not resolve to an address", host)
	default:
		s.cfg.logger.Warn("resolve webhook host", "host", host, "err", err)
		return nil, genpipe.Errorf(genpipe.EUNAVAILABLE, "could not resolve webhookUrl host %q now; retry later", host)
	}
}
