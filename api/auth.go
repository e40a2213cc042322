package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/tenants"
)

// maxAuthorization bounds the Authorization header we hash: keys are short,
// and anything longer is not one of them.
const maxAuthorization = 1024

// openTenant is whom every request belongs to without API keys. The API is
// open then, so anyone may ask for any priority: there is nobody to tell
// apart.
var openTenant = genpipe.Tenant{Name: genpipe.DefaultTenant, Weight: genpipe.DefaultWeight, MaxPriority: genpipe.PriorityHigh}

// keyring holds the SHA-256 of each API key and the tenant it belongs to.
// Comparing hashes gives equal-length inputs to the constant-time
// comparison, so neither a key's content nor its length leaks through
// timing. A keyring is never changed: a reload builds a new one.
type keyring struct {
	hashes  [][sha256.Size]byte
	tenants []genpipe.Tenant // tenants[i] owns hashes[i]
}

// newKeyring returns the keyring of a set of tenants and their keys.
func newKeyring(set tenants.Set) *keyring {
	byName := make(map[string]genpipe.Tenant, len(set.Tenants))
	for _, t := range set.Tenants {
		byName[t.Name] = t
	}
	k := &keyring{}
	for _, key := range set.Keys {
		k.hashes = append(k.hashes, key.SHA256)
		k.tenants = append(k.tenants, byName[key.Tenant]) // a Set's every key has its tenant
	}
	return k
}

func (k *keyring) enabled() bool { return len(k.hashes) > 0 }

// caller is who made a request: its owner, the hex SHA-256 of its key (""
// without keys), and the tenant the key belongs to.
type caller struct {
	owner  string
	tenant genpipe.Tenant
}

// caller returns who presents the key in r. Every configured key is
// compared, and the matching one's tenant picked without a branch, so the
// time taken does not tell which matched.
func (k *keyring) caller(r *http.Request) (caller, error) {
	header := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(header, " ")
	if header == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return caller{}, genpipe.Errorf(genpipe.EUNAUTHORIZED, "this API needs a key: send the header Authorization: Bearer KEY")
	}
	token = strings.TrimSpace(token)
	if token == "" || len(header) > maxAuthorization {
		return caller{}, errInvalidKey
	}
	sum := sha256.Sum256([]byte(token))
	match, at := 0, 0
	for i, h := range k.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], h[:])
		match |= eq
		at = subtle.ConstantTimeSelect(eq, i, at)
	}
	if match == 0 {
		return caller{}, errInvalidKey
	}
	return caller{owner: hex.EncodeToString(sum[:]), tenant: k.tenants[at]}, nil
}

var errInvalidKey = genpipe.Errorf(genpipe.EUNAUTHORIZED, "the API key is not valid")

type callerKey struct{}

// callerOf returns who guard found made r: without keys, owner "" of the
// default tenant.
func callerOf(r *http.Request) caller {
	if c, ok := r.Context().Value(callerKey{}).(caller); ok {
		return c
	}
	return caller{tenant: openTenant}
}

// ownerOf returns the owner that guard found for r: "" without keys.
func ownerOf(r *http.Request) string { return callerOf(r).owner }

// guard runs before every /v1/ handler and before anything slow: it checks
// the API key (when keys are on), then the client's rate limit.
func (s *Server) guard(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, err := s.authenticate(r)
		if err == nil {
			err = s.throttle(r)
		}
		if err != nil {
			s.problem(w, r, err)
			return
		}
		next(w, r)
	})
}

// authenticate returns r carrying its caller, or an EUNAUTHORIZED error.
// Without keys everyone is the owner "" of the default tenant. The keyring
// is read once per request: a reload swaps it whole.
func (s *Server) authenticate(r *http.Request) (*http.Request, error) {
	keys := s.keys.Load()
	if !keys.enabled() {
		return r, nil
	}
	c, err := keys.caller(r)
	if err != nil {
		return r, err
	}
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c)), nil
}

// throttle spends one of the client's tokens, or returns ETOOMANY with the
// time until the next one. The client is the API key's owner when keys are
// on, else the peer address.
func (s *Server) throttle(r *http.Request) error {
	if s.limiter == nil {
		return nil
	}
	client := clientAddr(r)
	if owner := ownerOf(r); owner != "" {
		client = "key:" + owner
	}
	wait, ok := s.limiter.take(client, s.cfg.now())
	if ok {
		return nil
	}
	return retryAfter(wait, genpipe.Errorf(genpipe.ETOOMANY,
		"rate limit: at most %g requests a second (bursts of %d); retry later", s.limiter.rate, int(s.limiter.burst)))
}

// clientAddr names a client without an API key: the connection's peer
// address, and for IPv6 its /64, which one host usually holds whole.
func clientAddr(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := peer.Addr().Unmap().WithZone("")
	if ip.Is6() {
		prefix, _ := ip.Prefix(64)
		return prefix.String()
	}
	return ip.String()
}
