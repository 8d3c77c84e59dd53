package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func parseKeySet(t *testing.T, out string) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(out), &set); err != nil {
		t.Fatalf("not a JWKS: %v: %q", err, out)
	}
	var kids []string
	for _, k := range set.Keys {
		if k.Algorithm != "EdDSA" || !k.Valid() || !k.IsPublic() {
			t.Errorf("published key %+v is not a public EdDSA key", k)
		}
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestCLIReceipts(t *testing.T) {
	c := newCLI(t)
	first := parseKeySet(t, c.mustRun("receipts", "public-key"))
	if len(first) != 1 {
		t.Fatalf("public keys %v, want one", first)
	}
	if again := parseKeySet(t, c.mustRun("receipts", "public-key")); len(again) != 1 || again[0] != first[0] {
		t.Errorf("a second public-key printed %v, want %v", again, first)
	}
	out := c.mustRun("receipts", "rotate")
	kids := parseKeySet(t, c.mustRun("receipts", "public-key"))
	if len(kids) != 2 || kids[1] != first[0] || !strings.Contains(out, kids[0]) {
		t.Errorf("after rotate (%q): %v, want the new key then %s", out, kids, first[0])
	}
	for _, args := range [][]string{{"receipts"}, {"receipts", "sign"}, {"receipts", "public-key", "--receipt-ttl", "10m"},
		{"receipts", "public-key", "--receipt-ttl", "72"}} {
		if _, _, err := c.run(args...); err == nil {
			t.Errorf("keyd %s succeeded", strings.Join(args, " "))
		}
	}
}

// TestServeReceipts: keyd serve signs receipts with the key keyd receipts
// public-key prints, valid for --receipt-ttl.
func TestServeReceipts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyd.db")
	p := serveInProcess(t, path, "--test-keys", "--receipt-ttl", "2h")
	res, err := http.PostForm(p.base+"/v1/validate", url.Values{"key": {"testVALID00000000000"}, "site": {"https://a.example/"}, "receipt": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	var answer struct{ Receipt string }
	err = json.NewDecoder(res.Body).Decode(&answer)
	res.Body.Close()
	if err != nil || answer.Receipt == "" {
		t.Fatalf("validate: %d %+v %v", res.StatusCode, answer, err)
	}
	jws, err := jose.ParseSigned(answer.Receipt, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	res, err = http.Get(p.base + "/.well-known/keyd-receipt-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(served, &set); err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("receipt signed with %s, served keys %s", kid, served)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Iat, Exp int64 }
	json.Unmarshal(payload, &claims)
	if claims.Exp-claims.Iat != 7200 {
		t.Errorf("receipt valid for %d s, want 7200 (--receipt-ttl 2h)", claims.Exp-claims.Iat)
	}
	c := newCLI(t)
	c.path = path
	if kids := parseKeySet(t, c.mustRun("receipts", "public-key")); len(kids) != 1 || kids[0] != kid {
		t.Errorf("keyd receipts public-key printed %v, want %s", kids, kid)
	}
}
