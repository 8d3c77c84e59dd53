package pluginapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// receiptPayload is a receipt's payload as a verifier reads it.
type receiptPayload struct {
	Iss       string   `json:"iss"`
	KeyID     string   `json:"key_id"`
	AccountID string   `json:"account_id"`
	Site      string   `json:"site"`
	Scopes    []string `json:"scopes"`
	Plan      string   `json:"plan"`
	Iat       int64    `json:"iat"`
	Exp       int64    `json:"exp"`
}

// receiptKeys fetches the published key set.
func receiptKeys(t *testing.T, e *testEnv) jose.JSONWebKeySet {
	t.Helper()
	res := e.do("GET", "/.well-known/keyd-receipt-keys.json", "", "")
	if res.status != 200 || res.header.Get("Cache-Control") == "" {
		t.Fatalf("receipt keys: %d %v %s", res.status, res.header, res.raw)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(res.raw), &set); err != nil {
		t.Fatalf("receipt keys are not a JWKS: %v: %s", err, res.raw)
	}
	return set
}

// verifyReceipt checks a receipt against the published keys as a site
// would, and returns its key id and payload.
func verifyReceipt(t *testing.T, e *testEnv, token string) (string, receiptPayload) {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatalf("receipt %q: %v", token, err)
	}
	h := jws.Signatures[0].Header
	if h.Algorithm != "EdDSA" || h.KeyID == "" || h.ExtraHeaders["typ"] != "JWT" {
		t.Errorf("receipt header %+v", h)
	}
	set := receiptKeys(t, e)
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("receipt signed with %q, which is not published", h.KeyID)
	}
	raw, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
	var p receiptPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return h.KeyID, p
}

// validateReceipt validates key from site asking for a receipt, as a form
// (what WordPress sends), and returns the receipt.
func validateReceipt(t *testing.T, e *testEnv, key, site string) string {
	t.Helper()
	r := e.do("POST", "/v1/validate", "application/x-www-form-urlencoded",
		url.Values{"key": {key}, "site": {site}, "receipt": {"1"}}.Encode())
	if r.status != 200 {
		t.Fatalf("validate with receipt: %d %s", r.status, r.raw)
	}
	receipt := str(r.body, "receipt")
	if receipt == "" {
		t.Fatalf("no receipt: %s", r.raw)
	}
	return receipt
}

func TestReceipt(t *testing.T) {
	e := newEnv(t, testToken)
	accountID, key := e.createAccount("Acme", "pro", 10)

	// Without receipt (or with receipt false) the answer has none.
	for _, body := range []string{`{"key":"` + key + `"}`, `{"key":"` + key + `","receipt":false}`, `{"key":"` + key + `","receipt":"0"}`} {
		r := e.doJSON("POST", "/v1/validate", body)
		if r.status != 200 || r.body["receipt"] != nil {
			t.Errorf("%s: %d %s, want VALID without a receipt", body, r.status, r.raw)
		}
	}
	// As JSON true, and as a form.
	r := e.doJSON("POST", "/v1/validate", `{"key":"`+key+`","site":"https://shop.example/","receipt":true}`)
	if r.status != 200 {
		t.Fatalf("validate: %d %s", r.status, r.raw)
	}
	checkFields(t, "VALID with receipt", r.body, "valid", "code", "key", "account", "receipt")
	kid, p := verifyReceipt(t, e, str(r.body, "receipt"))
	now := e.clock.Now().Unix()
	want := receiptPayload{Iss: "keyd", KeyID: str(r.body, "key", "id"), AccountID: accountID, Site: "https://shop.example/",
		Scopes: []string{"*"}, Plan: "pro", Iat: now, Exp: now + 72*3600}
	if got, _ := json.Marshal(p); string(got) != string(mustJSON(want)) {
		t.Errorf("receipt payload %s, want %s", got, mustJSON(want))
	}
	if form := validateReceipt(t, e, key, "https://shop.example/"); form != str(r.body, "receipt") {
		t.Error("a form asking for the same key and site got another receipt")
	}
	if set := receiptKeys(t, e); len(set.Keys) != 1 || set.Keys[0].KeyID != kid || set.Keys[0].Algorithm != "EdDSA" || set.Keys[0].Use != "sig" {
		t.Errorf("published keys %+v, want the one signing key %s", set.Keys, kid)
	}

	// Refusals carry no receipt; a bad receipt value is a 400 naming it.
	checkFailure(t, e.doJSON("POST", "/v1/validate", `{"key":"AAAAAAAAAAAAAAAAAAAA","receipt":true}`), 401, "NOT_FOUND")
	for _, body := range []string{`{"key":"` + key + `","receipt":"maybe"}`, `{"key":"` + key + `","receipt":{}}`, `{"key":"` + key + `","receipt":2}`} {
		bad := e.doJSON("POST", "/v1/validate", body)
		checkFailure(t, bad, 400, "INVALID_REQUEST")
		if msg := str(bad.body, "message"); !strings.Contains(msg, "receipt") {
			t.Errorf("%s: message %q does not name receipt", body, msg)
		}
	}
}

// TestReceiptReuse: the same key, site and state get the same receipt for
// half its life; another site, or any change to the key, gets a new one.
func TestReceiptReuse(t *testing.T) {
	e := newEnv(t, testToken)
	_, key := e.createAccount("Acme", "pro", 10)
	alias := e.doJSON("POST", "/v1/aliases", `{"name":"Client","ttl":"100h"}`, "X-API-Key", key)
	if alias.status != 201 {
		t.Fatalf("create alias: %d %s", alias.status, alias.raw)
	}
	aliasKey, aliasID := str(alias.body, "key"), str(alias.body, "alias", "id")
	const site = "https://shop.example/"

	first := validateReceipt(t, e, aliasKey, site)
	e.clock.Add(36*time.Hour - time.Second)
	if again := validateReceipt(t, e, aliasKey, site); again != first {
		t.Error("a new receipt before half the first one's life")
	}
	if other := validateReceipt(t, e, aliasKey, "https://other.example/"); other == first {
		t.Error("another site got the same receipt")
	}
	e.clock.Add(time.Second)
	second := validateReceipt(t, e, aliasKey, site)
	if second == first {
		t.Fatal("the receipt is still reused after half its life")
	}
	// The alias expires in 64h: the receipt ends with it.
	_, p := verifyReceipt(t, e, second)
	if exp := t0.Add(100 * time.Hour).Unix(); p.Exp != exp {
		t.Errorf("receipt of an alias expiring at %d ends at %d", exp, p.Exp)
	}

	// Deactivating and reactivating leaves the alias as it was, yet the
	// receipt is new; so after narrowing its scopes, with the new scopes.
	e.clock.Add(time.Minute)
	for _, op := range []string{"deactivate", "reactivate"} {
		if r := e.doJSON("POST", "/v1/aliases/"+aliasID+"/"+op, "", "X-API-Key", key); r.status != 200 {
			t.Fatalf("%s: %d %s", op, r.status, r.raw)
		}
	}
	third := validateReceipt(t, e, aliasKey, site)
	if third == second {
		t.Error("the receipt from before a deactivation is reused")
	}
	if r := e.doJSON("PATCH", "/v1/aliases/"+aliasID, `{"scopes":["optimize"]}`, "X-API-Key", key); r.status != 200 {
		t.Fatalf("narrow: %d %s", r.status, r.raw)
	}
	fourth := validateReceipt(t, e, aliasKey, site)
	if _, p := verifyReceipt(t, e, fourth); fourth == third || len(p.Scopes) != 1 || p.Scopes[0] != "optimize" {
		t.Errorf("after narrowing: scopes %v (same receipt: %v), want [optimize]", p.Scopes, fourth == third)
	}

	// A reset: the old key's receipt is new and ends with its grace.
	before := validateReceipt(t, e, key, site)
	res := e.doJSON("POST", "/v1/account/reset-key", `{"grace_period":"2h"}`, "X-API-Key", key)
	if res.status != 200 {
		t.Fatalf("reset: %d %s", res.status, res.raw)
	}
	after := validateReceipt(t, e, key, site)
	if _, p := verifyReceipt(t, e, after); after == before || p.Exp != e.clock.Now().Add(2*time.Hour).Unix() {
		t.Errorf("after a reset: exp %d (same receipt: %v), want the grace end %d", p.Exp, after == before, e.clock.Now().Add(2*time.Hour).Unix())
	}
	// A deleted alias gets no receipt at all.
	if r := e.do("DELETE", "/v1/aliases/"+aliasID, "", "", "X-API-Key", str(res.body, "key")); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	r := e.do("POST", "/v1/validate", "application/x-www-form-urlencoded", "receipt=1&key="+aliasKey)
	checkFailure(t, r, 401, "REVOKED")
}

// TestReceiptKeyRotation: after a rotation new receipts are signed with
// the new key, and the old key stays published until the last receipt it
// signed has expired.
func TestReceiptKeyRotation(t *testing.T) {
	e := newEnv(t, testToken)
	_, key := e.createAccount("Acme", "pro", 10)
	oldKid, _ := verifyReceipt(t, e, validateReceipt(t, e, key, "https://a.example/"))
	if _, err := e.db.RotateReceiptKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The running server reads the signing key again a minute on; it
	// signs with the old key until then, which is why that key stays
	// published a minute past a receipt's life.
	e.clock.Add(time.Minute)
	var newKid string
	// The new key is read in the background: ask (each time for another
	// site, so no receipt is reused) until it signs, for at most 30 s.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; newKid == "" || newKid == oldKid && time.Now().Before(deadline); i++ {
		newKid, _ = verifyReceipt(t, e, validateReceipt(t, e, key, fmt.Sprintf("https://site%d.example/", i)))
		if newKid == oldKid {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if newKid == oldKid {
		t.Fatal("receipts are still signed with the retired key")
	}
	set := receiptKeys(t, e)
	if len(set.Keys) != 2 || set.Keys[0].KeyID != newKid || set.Keys[1].KeyID != oldKid {
		t.Fatalf("published %+v, want %s then %s", set.Keys, newKid, oldKid)
	}
	e.clock.Add(72*time.Hour - time.Second) // retired 72h0m59s ago: still published
	if set := receiptKeys(t, e); len(set.Keys) != 2 {
		t.Errorf("the retired key is gone %v after its retirement", 72*time.Hour+time.Minute-time.Second)
	}
	e.clock.Add(time.Second)
	if set := receiptKeys(t, e); len(set.Keys) != 1 || set.Keys[0].KeyID != newKid {
		t.Errorf("published %+v after every receipt of the old key expired, want only %s", set.Keys, newKid)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
