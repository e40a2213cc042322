package notifier

// This file signs webhooks the Standard Webhooks way
// (https://www.standardwebhooks.com, spec version 1.0.0) and verifies
// them. It needs only the standard library: a receiver written in Go may
// copy it as it is, or use any Standard Webhooks library instead.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed webhook.
const (
	// HeaderID is the message's id: the same on every attempt to deliver
	// one message, so a receiver can drop one it has handled already.
	HeaderID = "webhook-id"
	// HeaderTimestamp is when this attempt was signed, in unix seconds,
	// so a receiver can refuse a message replayed later.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature is "v1," and the base64 HMAC-SHA256 of
	// "{id}.{timestamp}.{body}", keyed with the secret's key. It may hold
	// several signatures separated by spaces (a secret being rotated).
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock, either way, for Verify to accept it: the Standard
// Webhooks libraries' default.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a secret in the Standard Webhooks form: whsec_ and
// the key in base64.
const secretPrefix = "whsec_"

// The verification errors: a receiver should answer 4xx to all of them
// (the notifier does not retry a 4xx).
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrTimestamp      = errors.New("webhook: timestamp outside the tolerance: a replay, or a clock far off")
	ErrSignature      = errors.New("webhook: no valid signature")
)

// NewSecret returns a new random secret in the Standard Webhooks form:
// whsec_ and 32 random bytes in base64.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseSecret returns the HMAC key of a webhook secret. A secret in the
// Standard Webhooks form, whsec_<base64>, has the decoded part as its key,
// which must be 24 to 64 bytes. Any other non-empty secret (genpipe's
// secrets before Standard Webhooks) is its own key, byte for byte; a
// Standard Webhooks library takes it as whsec_ and the secret in base64.
func ParseSecret(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, secretPrefix)
	switch {
	case secret == "":
		return nil, errors.New("webhook secret is empty")
	case !ok:
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	switch {
	case err != nil:
		return nil, fmt.Errorf("webhook secret: the part after %s is not base64: %w", secretPrefix, err)
	case len(key) < 24 || len(key) > 64:
		return nil, fmt.Errorf("webhook secret: its key is %d bytes; want 24 to 64", len(key))
	}
	return key, nil
}

// Sign returns the HeaderSignature value of a message: "v1," and the
// base64 HMAC-SHA256 of "{id}.{unix seconds of at}.{body}".
func Sign(key []byte, id string, at time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(at.Unix(), 10), body))
}

func mac(key []byte, id, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + "." + timestamp + "."))
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a webhook a receiver got: that header signs body with
// secret (as given to the sender: whsec_ form or not), and that its
// timestamp is within tolerance of now (DefaultTolerance is usual). It
// returns nil, ErrMissingHeaders, ErrTimestamp or ErrSignature. Pass the
// body exactly as read: parsing and re-encoding the JSON changes it.
//
// A message that verifies may still be one handled already (a retry after
// a lost answer): keep the webhook-id of recent messages and skip those
// seen.
func Verify(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	return verifyAt(secret, header, body, tolerance, time.Now())
}

func verifyAt(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	id, timestamp, signatures := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || timestamp == "" || signatures == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want := mac(key, id, timestamp, body)
	for _, s := range strings.Fields(signatures) {
		version, encoded, _ := strings.Cut(s, ",")
		if version != "v1" {
			continue // another scheme (v1a: asymmetric)
		}
		if got, err := base64.StdEncoding.DecodeString(encoded); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}
