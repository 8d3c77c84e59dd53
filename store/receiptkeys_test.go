package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"
	"time"

	"keyd/store/storetest"
)

// TestReceiptKeys: the first signing key is made once however many ask at
// once, its private key is stored sealed, it comes back the same after a
// restart, and a rotation retires it while keeping it published for the
// lifetime given.
func TestReceiptKeys(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	clock := &stepClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	db := mustOpenDBAt(t, path, WithClock(clock.Now))

	var wg sync.WaitGroup
	kids := make([]string, 8)
	for i := range kids {
		wg.Go(func() {
			k, err := db.SigningReceiptKey(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if msg := []byte("receipt"); !ed25519.Verify(k.Public, msg, ed25519.Sign(k.Private, msg)) {
				t.Error("the private key does not match the public key")
			}
			kids[i] = k.KID
		})
	}
	wg.Wait()
	for _, kid := range kids {
		if kid != kids[0] || kid == "" {
			t.Fatalf("concurrent first uses got keys %v, want one", kids)
		}
	}
	if n := queryInt(t, db, `SELECT count(*) FROM receipt_keys`); n != 1 {
		t.Fatalf("%d receipt keys stored, want 1", n)
	}
	first, _ := db.SigningReceiptKey(ctx)
	var sealed []byte
	if err := db.r.QueryRow(`SELECT private_sealed FROM receipt_keys`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, first.Private.Seed()) {
		t.Fatal("the private key is stored in the clear")
	}

	db.Close()
	db = mustOpenDBAt(t, path, WithClock(clock.Now))
	if again, err := db.SigningReceiptKey(ctx); err != nil || again.KID != first.KID || !again.Private.Equal(first.Private) {
		t.Fatalf("after a restart: %s, %v; want %s with the same private key", again.KID, err, first.KID)
	}

	clock.Advance(time.Hour)
	rotated, err := db.RotateReceiptKey(ctx)
	if err != nil || rotated.KID == first.KID {
		t.Fatalf("rotate: %+v, %v", rotated, err)
	}
	if k, _ := db.SigningReceiptKey(ctx); k.KID != rotated.KID {
		t.Errorf("signing with %s after a rotation, want %s", k.KID, rotated.KID)
	}
	published := func(at time.Time) []string {
		t.Helper()
		keys, err := db.ReceiptPublicKeys(ctx, at, 72*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			if k.Private != nil {
				t.Error("a public key list holds a private key")
			}
			out = append(out, k.KID)
		}
		return out
	}
	retired := clock.Now()
	if got := published(retired.Add(72*time.Hour - time.Second)); len(got) != 2 || got[0] != rotated.KID || got[1] != first.KID {
		t.Errorf("published within the lifetime: %v, want %s then %s", got, rotated.KID, first.KID)
	}
	if got := published(retired.Add(72 * time.Hour)); len(got) != 1 || got[0] != rotated.KID {
		t.Errorf("published once the lifetime has passed: %v, want %s", got, rotated.KID)
	}
}

// TestReceiptKeyNeedsTheMasterKey: with another master key the signing key
// cannot be read.
func TestReceiptKeyNeedsTheMasterKey(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	key := bytes.Repeat([]byte{7}, SecretKeySize)
	db := mustOpenDBAt(t, path, WithSecretKey(key))
	if _, err := db.SigningReceiptKey(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	other := bytes.Repeat([]byte{8}, SecretKeySize)
	db = mustOpenDBAt(t, path, WithSecretKey(other))
	if _, err := db.SigningReceiptKey(ctx); !errors.Is(err, ErrSecretKeyMismatch) {
		t.Fatalf("with another master key: %v, want ErrSecretKeyMismatch", err)
	}
}
