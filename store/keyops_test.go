package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestResetWithoutGrace(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 10)
	owner := Actor{Type: ActorPrimary, KeyID: c.Key.ID, IP: "198.51.100.7"}

	r, err := db.ResetPrimaryKey(ctx, owner, c.Account.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Secret == c.Secret || !WellFormedKey(r.Secret) || r.Key.ID == c.Key.ID || r.Key.Hint != KeyHint(r.Secret) ||
		r.Key.Type != KeyTypePrimary || r.Key.Status != KeyActive || r.Key.Name != c.Key.Name {
		t.Errorf("new key after reset: %+v", r.Key)
	}
	if r.Previous.ID != c.Key.ID || r.Previous.Status != KeyRevoked || r.Previous.ValidUntil == nil || !r.Previous.ValidUntil.Equal(t0) {
		t.Errorf("previous key after reset: %+v", r.Previous)
	}
	// The old key is dead at once, in the same instant.
	old := mustLookup(t, db, c.Secret)
	if err := old.Check(clock.Now()); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("old key right after a reset without grace: %v, want ErrKeyRevoked", err)
	}
	cur := mustLookup(t, db, r.Secret)
	if err := cur.Check(clock.Now()); err != nil || cur.KeyID != r.Key.ID || !cur.IsPrimary() || cur.AccountID != c.Account.ID {
		t.Errorf("new key: %+v, check %v", cur, err)
	}

	// The new key can itself be reset; the account then has three primaries.
	r2, err := db.ResetPrimaryKey(ctx, owner, c.Account.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Previous.ID != r.Key.ID {
		t.Errorf("second reset retired %s, want %s", r2.Previous.ID, r.Key.ID)
	}
	keys, err := db.ListKeys(ctx, c.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, k := range keys {
		if k.StatusAt(clock.Now()) == KeyActive {
			active++
			if k.ID != r2.Key.ID {
				t.Errorf("key %s is still active after two resets", k.ID)
			}
		}
	}
	if len(keys) != 3 || active != 1 {
		t.Errorf("ListKeys after two resets: %d keys, %d active; want 3 and 1", len(keys), active)
	}
}

func TestResetWithGrace(t *testing.T) {
	ctx := context.Background()
	// A time part under the second: stored times are whole seconds.
	start := t0.Add(400 * time.Millisecond)
	clock := newFakeClock(start)
	db := mustOpenDB(t, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 10)
	aliasCount := queryInt(t, db, `SELECT count(*) FROM keys WHERE type = 'alias'`)

	const grace = 24 * time.Hour
	r, err := db.ResetPrimaryKey(ctx, OperatorActor(""), c.Account.ID, grace)
	if err != nil {
		t.Fatal(err)
	}
	// Rounded up to the whole second, so the grace is never shorter than asked.
	validUntil := t0.Add(grace + time.Second)
	if r.Previous.ValidUntil == nil || !r.Previous.ValidUntil.Equal(validUntil) {
		t.Fatalf("previous valid_until = %v, want %v", r.Previous.ValidUntil, validUntil)
	}
	if r.Previous.StatusAt(clock.Now()) != KeyActive {
		t.Errorf("previous key status during grace = %s, want active", r.Previous.StatusAt(clock.Now()))
	}
	old := mustLookup(t, db, c.Secret)
	if old.ValidUntil != validUntil.Unix() {
		t.Errorf("index valid_until = %d, want %d", old.ValidUntil, validUntil.Unix())
	}
	cur := mustLookup(t, db, r.Secret)

	// Both keys work during the grace period, to the last second of it.
	for _, at := range []time.Time{start, start.Add(time.Hour), validUntil.Add(-time.Second), validUntil.Add(-time.Nanosecond)} {
		clock.Set(at)
		if err := checkKey(t, db, c.Secret, clock.Now()); err != nil {
			t.Errorf("old key at %v (valid until %v): %v, want valid", at, validUntil, err)
		}
		if err := cur.Check(clock.Now()); err != nil {
			t.Errorf("new key at %v: %v", at, err)
		}
	}
	// At valid_until exactly, and after, the old key is revoked; no job has run.
	for _, at := range []time.Time{validUntil, validUntil.Add(time.Nanosecond), validUntil.Add(time.Second), validUntil.Add(240 * time.Hour)} {
		clock.Set(at)
		if err := checkKey(t, db, c.Secret, clock.Now()); !errors.Is(err, ErrKeyRevoked) {
			t.Errorf("old key at %v (valid until %v): %v, want ErrKeyRevoked", at, validUntil, err)
		}
		if got := r.Previous.StatusAt(at); got != KeyRevoked {
			t.Errorf("previous StatusAt(%v) = %s, want revoked", at, got)
		}
		if err := cur.Check(clock.Now()); err != nil {
			t.Errorf("new key at %v: %v", at, err)
		}
	}
	if n := queryInt(t, db, `SELECT count(*) FROM keys WHERE type = 'alias'`); n != aliasCount {
		t.Errorf("a reset changed the number of aliases from %d to %d", aliasCount, n)
	}
}

func TestResetGraceBounds(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 10)
	var inv *InvalidError
	for _, g := range []time.Duration{-time.Second, MaxGracePeriod + time.Second, 169 * time.Hour} {
		if _, err := db.ResetPrimaryKey(ctx, SystemActor, c.Account.ID, g); !errors.As(err, &inv) || inv.Fields["grace_period"] == "" {
			t.Errorf("ResetPrimaryKey(grace %v) error = %v, want InvalidError on grace_period", g, err)
		}
	}
	if err := checkKey(t, db, c.Secret, clock.Now()); err != nil {
		t.Errorf("refused resets touched the key: %v", err)
	}
	r, err := db.ResetPrimaryKey(ctx, SystemActor, c.Account.ID, MaxGracePeriod)
	if err != nil {
		t.Fatalf("ResetPrimaryKey(168h): %v", err)
	}
	if !r.Previous.ValidUntil.Equal(t0.Add(MaxGracePeriod)) {
		t.Errorf("valid_until with 168h grace = %v", r.Previous.ValidUntil)
	}
	if _, err := db.ResetPrimaryKey(ctx, SystemActor, "acc_0000000000000000", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResetPrimaryKey(missing account) error = %v, want ErrNotFound", err)
	}
}

// checkKey looks a key up in the index and checks it at t.
func checkKey(tb testing.TB, db *DB, secret string, t time.Time) error {
	tb.Helper()
	v := mustLookup(tb, db, secret)
	return v.Check(t)
}
