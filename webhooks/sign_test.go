package webhooks

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The test vector published with the Standard Webhooks spec.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func specHeader(sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, specID)
	h.Set(HeaderTimestamp, "1614265330")
	h.Set(HeaderSignature, sig)
	return h
}

func TestSignSpecVector(t *testing.T) {
	got, err := Sign(specSecret, specID, time.Unix(specTS, 0), []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != specSig {
		t.Fatalf("Sign = %q, want %q", got, specSig)
	}
	// Sub-second parts of the timestamp are not signed: only unix seconds
	// travel in webhook-timestamp.
	got2, err := Sign(specSecret, specID, time.Unix(specTS, 999_999_999).In(time.FixedZone("X", 3600)), []byte(specBody))
	if err != nil || got2 != specSig {
		t.Fatalf("Sign with nanoseconds and zone = %q, %v; want %q", got2, err, specSig)
	}
}

func TestSignMatchesReferenceLibrary(t *testing.T) {
	bodies := []string{"", "{}", specBody, `{"type":"key.reset","data":{"a":"<&>"}}`, strings.Repeat("x", 100_000), "\x00\xff binary"}
	for range 5 {
		secret := NewSecret()
		ref, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range bodies {
			ts := time.Unix(1_700_000_000, 0)
			want, err := ref.Sign("msg_1", ts, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Sign(secret, "msg_1", ts, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("body %.20q: Sign = %q, reference library = %q", body, got, want)
			}
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if a == b {
		t.Fatal("two NewSecret calls returned the same secret")
	}
	for _, s := range []string{a, b} {
		enc, ok := strings.CutPrefix(s, SecretPrefix)
		if !ok {
			t.Fatalf("%q lacks prefix %q", s, SecretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 {
			t.Fatalf("secret decodes to %d bytes, %v; want 32 bytes", len(key), err)
		}
		if err := ValidateSecret(s); err != nil {
			t.Fatalf("ValidateSecret(NewSecret()) = %v", err)
		}
	}
}

func TestValidateSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	good32 := SecretPrefix + b64(32)
	tests := []struct {
		name   string
		secret string
		ok     bool
	}{
		{"spec 24 bytes", specSecret, true},
		{"32 bytes", good32, true},
		{"64 bytes", SecretPrefix + b64(64), true},
		{"empty", "", false},
		{"prefix only", SecretPrefix, false},
		{"no prefix", b64(32), false},
		{"upper-case prefix", "WHSEC_" + b64(32), false},
		{"23 bytes", SecretPrefix + b64(23), false},
		{"65 bytes", SecretPrefix + b64(65), false},
		{"not base64", SecretPrefix + strings.Repeat("!", 44), false},
		{"url-safe alphabet", SecretPrefix + "-_" + b64(32)[2:], false},
		{"padding dropped", strings.TrimRight(good32, "="), false},
		{"embedded newline", good32[:20] + "\n" + good32[20:], false},
		{"trailing newline", good32 + "\n", false},
		{"leading space", " " + good32, false},
		{"non-canonical last char", SecretPrefix + b64(32)[:42] + "B=", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSecret(tt.secret)
			if tt.ok != (err == nil) {
				t.Fatalf("ValidateSecret = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidSecret) {
					t.Fatalf("error %v does not wrap ErrInvalidSecret", err)
				}
				if body := strings.TrimPrefix(tt.secret, SecretPrefix); len(body) > 4 && strings.Contains(err.Error(), body) {
					t.Fatalf("error %q contains the secret", err)
				}
				if _, err := Sign(tt.secret, "msg_1", time.Unix(1, 0), nil); !errors.Is(err, ErrInvalidSecret) {
					t.Fatalf("Sign with bad secret = %v, want ErrInvalidSecret", err)
				}
			}
		})
	}
}

func TestSignEmptyID(t *testing.T) {
	if _, err := Sign(specSecret, "", time.Unix(specTS, 0), nil); !errors.Is(err, ErrEmptyMessageID) {
		t.Fatalf("Sign with empty id = %v, want ErrEmptyMessageID", err)
	}
}

func TestSignatureHeader(t *testing.T) {
	s1, s2 := NewSecret(), NewSecret()
	ts := time.Unix(specTS, 0)
	body := []byte(specBody)
	tests := []struct {
		name    string
		secrets []string
		parts   int
		err     error
	}{
		{"one secret", []string{s1}, 1, nil},
		{"rotation", []string{s1, s2}, 2, nil},
		{"duplicate", []string{s1, s1}, 1, nil},
		{"none", nil, 0, ErrNoSecrets},
		{"one invalid", []string{s1, "whsec_short"}, 0, ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := SignatureHeader(tt.secrets, specID, ts, body)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if strings.Contains(err.Error(), strings.TrimPrefix(s1, SecretPrefix)) {
					t.Fatal("error contains a secret")
				}
				return
			}
			parts := strings.Split(h, " ")
			if len(parts) != tt.parts {
				t.Fatalf("header %q has %d signatures, want %d", h, len(parts), tt.parts)
			}
			hdr := specHeader(h)
			for _, s := range tt.secrets {
				if err := Verify(s, hdr, body, ts, 0); err != nil {
					t.Errorf("Verify with one live secret: %v", err)
				}
				ref, _ := standardwebhooks.NewWebhook(s)
				if err := ref.VerifyIgnoringTimestamp(body, hdr); err != nil {
					t.Errorf("reference library rejects the header: %v", err)
				}
			}
			if err := Verify(NewSecret(), hdr, body, ts, 0); !errors.Is(err, ErrNoMatchingSignature) {
				t.Errorf("Verify with a stranger's secret = %v, want ErrNoMatchingSignature", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(specTS, 0)
	body := []byte(specBody)
	other := NewSecret()
	otherSig, _ := Sign(other, specID, now, body)
	mod := func(f func(h http.Header)) http.Header {
		h := specHeader(specSig)
		f(h)
		return h
	}
	tests := []struct {
		name      string
		secret    string
		h         http.Header
		body      string
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"spec vector", specSecret, specHeader(specSig), specBody, now, 0, nil},
		{"4m59s late", specSecret, specHeader(specSig), specBody, now.Add(4*time.Minute + 59*time.Second), 0, nil},
		{"5m early", specSecret, specHeader(specSig), specBody, now.Add(-5 * time.Minute), 0, nil},
		{"5m1s late", specSecret, specHeader(specSig), specBody, now.Add(5*time.Minute + time.Second), 0, ErrTimestampOutOfTolerance},
		{"5m1s early", specSecret, specHeader(specSig), specBody, now.Add(-5*time.Minute - time.Second), 0, ErrTimestampOutOfTolerance},
		{"wider tolerance", specSecret, specHeader(specSig), specBody, now.Add(time.Hour), 2 * time.Hour, nil},
		{"narrower tolerance", specSecret, specHeader(specSig), specBody, now.Add(time.Minute), 30 * time.Second, ErrTimestampOutOfTolerance},
		{"body changed", specSecret, specHeader(specSig), `{"test": 2432232315}`, now, 0, ErrNoMatchingSignature},
		{"body whitespace changed", specSecret, specHeader(specSig), `{"test":2432232314}`, now, 0, ErrNoMatchingSignature},
		{"id changed", specSecret, mod(func(h http.Header) { h.Set(HeaderID, "msg_other") }), specBody, now, 0, ErrNoMatchingSignature},
		{"timestamp changed", specSecret, mod(func(h http.Header) { h.Set(HeaderTimestamp, "1614265331") }), specBody, now, 0, ErrNoMatchingSignature},
		{"wrong secret", other, specHeader(specSig), specBody, now, 0, ErrNoMatchingSignature},
		{"several signatures, last matches", specSecret, specHeader(otherSig + " v1a,abc v2," + specSig[3:] + " garbage " + specSig), specBody, now, 0, nil},
		{"matching signature under another version", specSecret, specHeader("v2," + specSig[3:]), specBody, now, 0, ErrNoMatchingSignature},
		{"signature not base64", specSecret, specHeader("v1,***"), specBody, now, 0, ErrNoMatchingSignature},
		{"signature truncated", specSecret, specHeader(specSig[:len(specSig)-4]), specBody, now, 0, ErrNoMatchingSignature},
		{"no id", specSecret, mod(func(h http.Header) { h.Del(HeaderID) }), specBody, now, 0, ErrMissingHeaders},
		{"no timestamp", specSecret, mod(func(h http.Header) { h.Del(HeaderTimestamp) }), specBody, now, 0, ErrMissingHeaders},
		{"no signature", specSecret, mod(func(h http.Header) { h.Del(HeaderSignature) }), specBody, now, 0, ErrMissingHeaders},
		{"timestamp not a number", specSecret, mod(func(h http.Header) { h.Set(HeaderTimestamp, "yesterday") }), specBody, now, 0, ErrInvalidTimestamp},
		{"timestamp negative", specSecret, mod(func(h http.Header) { h.Set(HeaderTimestamp, "-1614265330") }), specBody, now, 0, ErrInvalidTimestamp},
		{"timestamp in milliseconds", specSecret, mod(func(h http.Header) { h.Set(HeaderTimestamp, "1614265330000") }), specBody, now, 0, ErrTimestampOutOfTolerance},
		{"timestamp huge", specSecret, mod(func(h http.Header) { h.Set(HeaderTimestamp, "99999999999999999999") }), specBody, now, 0, ErrInvalidTimestamp},
		{"invalid secret", "whsec_nope", specHeader(specSig), specBody, now, 0, ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.h, []byte(tt.body), tt.now, tt.tolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
