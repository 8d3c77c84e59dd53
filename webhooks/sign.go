package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every endpoint signing secret, as in the Standard
// Webhooks spec, so a secret is recognisable wherever it is pasted.
const SecretPrefix = "whsec_"

// Secret key sizes in bytes. The spec recommends 24 to 64 bytes; keyd makes
// 32-byte secrets and accepts the whole recommended range so that secrets
// made by other Standard Webhooks senders can be verified too.
const (
	secretBytes    = 32
	minSecretBytes = 24
	maxSecretBytes = 64
)

// Header names of a Standard Webhooks message.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// RotationOverlap is how long an endpoint's previous secret keeps signing
// messages, alongside the new one, after a rotation.
const RotationOverlap = 24 * time.Hour

// DefaultTolerance is how far a message's timestamp may be from the
// receiver's clock before [Verify] rejects it, guarding against replays.
const DefaultTolerance = 5 * time.Minute

// Errors returned by the signing functions. None of them carries the secret.
var (
	// ErrInvalidSecret means a secret is not "whsec_" followed by the
	// canonical base64 of 24 to 64 bytes.
	ErrInvalidSecret = errors.New("webhooks: invalid signing secret")
	// ErrMissingHeaders means a webhook-id, webhook-timestamp or
	// webhook-signature header is absent or empty.
	ErrMissingHeaders = errors.New("webhooks: missing webhook-id, webhook-timestamp or webhook-signature header")
	// ErrInvalidTimestamp means webhook-timestamp is not unix seconds.
	ErrInvalidTimestamp = errors.New("webhooks: webhook-timestamp is not a unix time in seconds")
	// ErrTimestampOutOfTolerance means the message is older or newer than
	// the tolerance allows. Receivers usually answer 400 to it.
	ErrTimestampOutOfTolerance = errors.New("webhooks: webhook-timestamp is too far from the current time")
	// ErrNoMatchingSignature means no v1 signature in the header was made
	// with the secret. Receivers usually answer 401 to it.
	ErrNoMatchingSignature = errors.New("webhooks: no matching signature")
	// ErrNoSecrets means a message was to be signed with no secret at all.
	ErrNoSecrets = errors.New("webhooks: no signing secret")
	// ErrEmptyMessageID means a message was to be signed without an id.
	ErrEmptyMessageID = errors.New("webhooks: empty message id")
)

// NewSecret returns a new signing secret: "whsec_" and the base64 of 32
// bytes from crypto/rand.
func NewSecret() string {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails, see crypto/rand.Read
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ValidateSecret reports whether s is a well-formed signing secret. It is
// strict (no surrounding space, canonical padded base64) so that a secret
// that was mangled in transit is caught when it is stored, not when the
// first signature fails to verify.
func ValidateSecret(s string) error {
	_, err := secretKey(s)
	return err
}

// secretKey returns the HMAC key of a secret string.
func secretKey(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, ErrInvalidSecret
	}
	key, err := base64.StdEncoding.Strict().DecodeString(enc)
	// DecodeString skips \r and \n and accepts either padding; comparing
	// with the re-encoding rejects every non-canonical spelling.
	if err != nil || base64.StdEncoding.EncodeToString(key) != enc {
		return nil, ErrInvalidSecret
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, ErrInvalidSecret
	}
	return key, nil
}

// Sign returns the Standard Webhooks signature of one message under one
// secret: "v1," and the base64 of HMAC-SHA256 over "msgID.timestamp.body",
// keyed with the decoded part of the secret after "whsec_". The timestamp is
// taken in whole unix seconds, the same value sent as webhook-timestamp.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	if msgID == "" {
		return "", ErrEmptyMessageID
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, msgID, ts.Unix(), body)), nil
}

// SignatureHeader returns the webhook-signature header value for a message
// signed with every live secret of an endpoint, space-separated. An
// endpoint has two live secrets during a rotation, so a receiver still
// holding the old one keeps verifying. Duplicate secrets are signed once.
func SignatureHeader(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", ErrNoSecrets
	}
	sigs := make([]string, 0, len(secrets))
	seen := make(map[string]bool, len(secrets))
	for _, s := range secrets {
		if seen[s] {
			continue
		}
		seen[s] = true
		sig, err := Sign(s, msgID, ts, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

func mac(key []byte, msgID string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a received message the way a receiver should: the three
// headers are present, webhook-timestamp is within tolerance of now (a
// tolerance of zero or less means [DefaultTolerance]), and at least one v1
// signature in webhook-signature was made with secret over this exact body.
// Signatures of other versions are ignored, as the spec requires.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := parseUnix(tsText)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrTimestampOutOfTolerance
	}
	want := mac(key, id, unix, body)
	for _, sig := range strings.Fields(sigs) {
		version, enc, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}

// parseUnix parses a webhook-timestamp value: decimal digits only.
func parseUnix(s string) (int64, error) {
	if len(s) > 18 {
		return 0, ErrInvalidTimestamp
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrInvalidTimestamp
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrInvalidTimestamp
	}
	return n, nil
}
