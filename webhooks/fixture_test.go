package webhooks

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"keyd/store"
)

var update = flag.Bool("update", false, "rewrite the WordPress plugin's signed-message fixture")

// wpFixturePath is the message keyd signs for the WordPress plugin's PHP
// tests, so that the plugin is tested against keyd's own signatures.
var wpFixturePath = filepath.Join("..", "wp-plugin-stub", "tests", "fixtures", "keyd-signed.json")

// wpFixture is the fixture file's shape; every field is a string.
type wpFixture struct {
	Secret    string `json:"secret"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

// The fixture's inputs are fixed, so that -update is reproducible. The
// secret signs nothing but this fixture.
const (
	fixtureSecret = "whsec_K+WMsEGvVad8oJox5DX0ciE2fFfGBBCIAeoOKKTvJSQ="
	fixtureID     = "msg_bb4b2c90a9c34e884262"
	fixtureUnix   = 1735689600 // 2025-01-01T00:00:00Z
)

// buildWPFixture signs a key.reset message with keyd's code, its data the
// store's own key.reset payload, and returns the fixture file's content.
func buildWPFixture(t *testing.T) []byte {
	t.Helper()
	at := time.Unix(fixtureUnix, 0).UTC()
	data := store.KeyResetData{AccountID: "acc_5mWq81", Hint: "Qw3r", KeyID: "key_2Jc8nQ", Name: "main",
		Status: store.KeyActive, Type: store.KeyTypePrimary,
		Previous: store.PreviousKeyData{Hint: "Zx8v", ID: "key_9xTz1a", ValidUntil: at.Add(time.Hour).Format(time.RFC3339)}}
	body, err := store.NewWebhookBody(store.EventKeyReset, 12, at, data)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := SignatureHeader([]string{fixtureSecret}, fixtureID, at, body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(wpFixture{
		Secret:    fixtureSecret,
		ID:        fixtureID,
		Timestamp: strconv.FormatInt(fixtureUnix, 10),
		Body:      string(body),
		Signature: sig,
	}, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// A 20-character run of letters and digits, which is what a key looks like.
var keyLike = regexp.MustCompile(`(^|[^A-Za-z0-9])[A-Za-z0-9]{20}([^A-Za-z0-9]|$)`)

func TestWordPressFixture(t *testing.T) {
	want := buildWPFixture(t)
	if *update {
		if err := os.MkdirAll(filepath.Dir(wpFixturePath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(wpFixturePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(wpFixturePath)
	if err != nil {
		t.Fatalf("%v (run go test ./webhooks -run TestWordPressFixture -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale or was edited by hand; run go test ./webhooks -run TestWordPressFixture -update\ngot:\n%s\nwant:\n%s", wpFixturePath, got, want)
	}

	var f wpFixture
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("fixture is not an object of string fields: %v", err)
	}
	if err := ValidateSecret(f.Secret); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^msg_[A-Za-z0-9]+$`).MatchString(f.ID) {
		t.Fatalf("id %q is not a message id", f.ID)
	}
	unix, err := strconv.ParseInt(f.Timestamp, 10, 64)
	if err != nil || strconv.FormatInt(unix, 10) != f.Timestamp {
		t.Fatalf("timestamp %q is not decimal unix seconds", f.Timestamp)
	}
	ts := time.Unix(unix, 0)

	sig, err := Sign(f.Secret, f.ID, ts, []byte(f.Body))
	if err != nil || sig != f.Signature {
		t.Fatalf("Sign = %q, %v; the fixture says %q", sig, err, f.Signature)
	}
	h := http.Header{}
	h.Set(HeaderID, f.ID)
	h.Set(HeaderTimestamp, f.Timestamp)
	h.Set(HeaderSignature, f.Signature)
	if err := Verify(f.Secret, h, []byte(f.Body), ts, 0); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	ref, _ := standardwebhooks.NewWebhook(f.Secret)
	if err := ref.VerifyIgnoringTimestamp([]byte(f.Body), h); err != nil {
		t.Fatalf("reference library: %v", err)
	}

	p, err := store.ParseWebhookBody([]byte(f.Body))
	if err != nil || p.Type != store.EventKeyReset {
		t.Fatalf("body: %+v, %v; want a key.reset payload", p, err)
	}
	if m := keyLike.FindString(f.Body); m != "" {
		t.Fatalf("body contains something that looks like a key: %q", m)
	}
}
