package pluginapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"keyd/store"
)

var updateReceiptFixture = flag.Bool("update", false, "rewrite the WordPress plugin's receipt fixture")

// receiptFixturePath holds receipts keyd signs for the WordPress plugin's
// PHP tests, so that the plugin is tested against keyd's own receipts.
var receiptFixturePath = filepath.Join("..", "wp-plugin-stub", "tests", "fixtures", "keyd-receipt.json")

// receiptFixture is the fixture file's shape.
type receiptFixture struct {
	Keys       json.RawMessage `json:"keys"` // the JWKS keyd publishes
	Site       string          `json:"site"`
	KeyID      string          `json:"key_id"`
	IssuedAt   int64           `json:"issued_at"`
	ValidUntil int64           `json:"valid_until"`
	Receipt    string          `json:"receipt"`
	// Foreign is signed by another key under the published kid; Unknown
	// by another key under a kid that is not published.
	Foreign string `json:"foreign_receipt"`
	Unknown string `json:"unknown_kid_receipt"`
}

// fixedReceiptKey is a ReceiptStore with one key made from a seed, so that
// the fixture is reproducible (Ed25519 signatures are deterministic). The
// seeds sign nothing but the fixture.
type fixedReceiptKey struct{ key store.ReceiptKey }

func newFixedReceiptKey(kid string, seed byte) fixedReceiptKey {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return fixedReceiptKey{store.ReceiptKey{KID: kid, Public: priv.Public().(ed25519.PublicKey), Private: priv}}
}

func (f fixedReceiptKey) SigningReceiptKey(context.Context) (store.ReceiptKey, error) {
	return f.key, nil
}

func (f fixedReceiptKey) ReceiptPublicKeys(context.Context, time.Time, time.Duration) ([]store.ReceiptKey, error) {
	return []store.ReceiptKey{f.key}, nil
}

func buildReceiptFixture(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	v := store.KeyView{KeyID: "key_2c9f1e07a4b3d658", AccountID: "acc_71d0c3e5f2a98b46", Scopes: []string{"*"}, Plan: "pro"}
	const site = "https://shop.example/"
	sign := func(keys fixedReceiptKey) string {
		token, err := newReceipts(keys, 0, slog.New(slog.DiscardHandler)).issue(ctx, &v, site, at)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	keyd := newFixedReceiptKey("rk_5e1d0c9b8a7f6e5d", 1)
	set, err := ReceiptKeySet([]store.ReceiptKey{keyd.key})
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(receiptFixture{
		Keys: set, Site: site, KeyID: v.KeyID, IssuedAt: at.Unix(), ValidUntil: at.Add(DefaultReceiptLifetime).Unix(),
		Receipt: sign(keyd),
		Foreign: sign(newFixedReceiptKey(keyd.key.KID, 2)),
		Unknown: sign(newFixedReceiptKey("rk_0000000000000000", 3)),
	}, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestWordPressReceiptFixture(t *testing.T) {
	want := buildReceiptFixture(t)
	if *updateReceiptFixture {
		if err := os.WriteFile(receiptFixturePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(receiptFixturePath)
	if err != nil {
		t.Fatalf("%v (run go test ./plugin-api -run TestWordPressReceiptFixture -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale or was edited by hand; run go test ./plugin-api -run TestWordPressReceiptFixture -update", receiptFixturePath)
	}
	// What the PHP tests rely on: the receipt verifies with the published
	// set, the other two do not.
	var f receiptFixture
	if err := json.Unmarshal(got, &f); err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(f.Keys, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("keys: %v, %s", err, f.Keys)
	}
	for name, token := range map[string]string{"receipt": f.Receipt, "foreign": f.Foreign, "unknown": f.Unknown} {
		jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = jws.Verify(set.Keys[0])
		if (err == nil) != (name == "receipt") {
			t.Errorf("%s: verify with the published key: %v", name, err)
		}
	}
}
