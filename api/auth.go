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
)

// maxAuthorization bounds the Authorization header we hash: keys are short,
// and anything longer is not one of them.
const maxAuthorization = 1024

// keyring holds the SHA-256 of each API key. Comparing hashes gives
// equal-length inputs to the constant-time comparison, so neither a key's
// content nor its length leaks through timing.
type keyring struct {
	hashes [][sha256.Size]byte
}

func newKeyring(keys []string) keyring {
	var k keyring
	for _, key := range keys {
		if key != "" {
			k.hashes = append(k.hashes, sha256.Sum256([]byte(key)))
		}
	}
	return k
}

func (k keyring) enabled() bool { return len(k.hashes) > 0 }

// owner returns the owner of the key r presents: the hex SHA-256 of the key.
// Every configured key is compared, so the time taken does not tell which
// matched.
func (k keyring) owner(r *http.Request) (string, error) {
	header := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(header, " ")
	if header == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", genpipe.Errorf(genpipe.EUNAUTHORIZED, "this API needs a key: send the header Authorization: Bearer KEY")
	}
	token = strings.TrimSpace(token)
	if token == "" || len(header) > maxAuthorization {
		return "", errInvalidKey
	}
	sum := sha256.Sum256([]byte(token))
	match := 0
	for _, h := range k.hashes {
		match |= subtle.ConstantTimeCompare(sum[:], h[:])
	}
	if match == 0 {
		return "", errInvalidKey
	}
	return hex.EncodeToString(sum[:]), nil
}

var errInvalidKey = genpipe.Errorf(genpipe.EUNAUTHORIZED, "the API key is not valid")

type ownerKey struct{}

// ownerOf returns the owner that guard found for r: "" without keys.
func ownerOf(r *http.Request) string {
	owner, _ := r.Context().Value(ownerKey{}).(string)
	return owner
}

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

// authenticate returns r carrying its owner, or an EUNAUTHORIZED error.
// Without keys everyone is the owner "".
func (s *Server) authenticate(r *http.Request) (*http.Request, error) {
	if !s.keys.enabled() {
		return r, nil
	}
	owner, err := s.keys.owner(r)
	if err != nil {
		return r, err
	}
	return r.WithContext(context.WithValue(r.Context(), ownerKey{}, owner)), nil
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
