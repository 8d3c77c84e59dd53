package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"keyd/store/storetest"
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

// keyRevokedEvents returns the key.revoked events of a key, oldest first.
func keyRevokedEvents(tb testing.TB, db *DB, keyID string) []eventRow {
	tb.Helper()
	var out []eventRow
	for _, e := range readEvents(tb, db, 0) {
		if e.typ == EventKeyRevoked && e.target.String == keyID {
			out = append(out, e)
		}
	}
	return out
}

// checkRevokedEvent checks a key.revoked payload: the key, its hint, why and
// since when, never the key itself.
func checkRevokedEvent(tb testing.TB, e eventRow, k Created, reason string, at time.Time) {
	tb.Helper()
	var data struct {
		AccountID  string `json:"account_id"`
		KeyID      string `json:"key_id"`
		Type       string `json:"type"`
		Hint       string `json:"hint"`
		Status     string `json:"status"`
		ValidUntil string `json:"valid_until"`
		Reason     string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(e.data), &data); err != nil || data.AccountID != k.Account.ID || data.KeyID != k.Key.ID ||
		data.Type != KeyTypePrimary || data.Hint != KeyHint(k.Secret) || data.Status != KeyRevoked ||
		data.ValidUntil != at.Format(time.RFC3339) || data.Reason != reason {
		tb.Errorf("key.revoked data = %s; want key %s reason %s valid_until %s", e.data, k.Key.ID, reason, at.Format(time.RFC3339))
	}
	if strings.Contains(e.data, k.Secret) {
		tb.Errorf("key.revoked data holds the key: %s", e.data)
	}
}

// TestResetWithoutGraceKillsEveryEarlierKey is the leaked-key case: K1, a
// reset with a grace to K2, another to K3, then a reset without grace to K4
// must leave K4 the only key that validates, at once and after a restart.
func TestResetWithoutGraceKillsEveryEarlierKey(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	path := storetest.DSN(t)
	db := mustOpenDBAt(t, path, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 10)
	owner := Actor{Type: ActorPrimary, KeyID: c.Key.ID, IP: "198.51.100.7"}

	keys := []Created{c} // K1..K4 as account, key and secret
	for _, grace := range []time.Duration{time.Hour, time.Hour, 0} {
		clock.Add(time.Minute)
		r, err := db.ResetPrimaryKey(ctx, owner, c.Account.ID, grace)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, Created{Account: c.Account, Key: r.Key, Secret: r.Secret})
		owner.KeyID = r.Key.ID
	}
	now := clock.Now()
	check := func(db *DB, when string) {
		t.Helper()
		for i, k := range keys[:3] {
			if err := checkKey(t, db, k.Secret, now); !errors.Is(err, ErrKeyRevoked) {
				t.Errorf("%s: K%d validates: %v, want ErrKeyRevoked", when, i+1, err)
			}
		}
		if err := checkKey(t, db, keys[3].Secret, now); err != nil {
			t.Errorf("%s: K4: %v", when, err)
		}
		list, err := db.ListKeys(ctx, c.Account.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range list {
			if st := k.StatusAt(now); (k.ID == keys[3].Key.ID) != (st == KeyActive) || k.InGraceAt(now) {
				t.Errorf("%s: key %s is %s (in grace %v)", when, k.ID, st, k.InGraceAt(now))
			}
		}
	}
	check(db, "right after the reset")

	// K1 lost its grace to the second reset, K2 to the third; K3 was
	// replaced without grace, which key.reset announces.
	for i, at := range []time.Time{t0.Add(2 * time.Minute), t0.Add(3 * time.Minute)} {
		evs := keyRevokedEvents(t, db, keys[i].Key.ID)
		if len(evs) != 1 {
			t.Fatalf("K%d: %d key.revoked events, want 1", i+1, len(evs))
		}
		checkRevokedEvent(t, evs[0], keys[i], RevokedByReset, at)
	}
	if evs := keyRevokedEvents(t, db, keys[2].Key.ID); len(evs) != 0 {
		t.Errorf("K3, announced by key.reset, also has key.revoked: %+v", evs)
	}
	// The grace job finds nothing more to revoke, now or after the grace.
	clock.Add(2 * time.Hour)
	if n, err := db.RevokeEndedGrace(ctx); err != nil || n != 0 {
		t.Errorf("RevokeEndedGrace after the chain: %d, %v; want 0", n, err)
	}
	clock.Set(now)
	db.Close()
	check(mustOpenDBAt(t, path, WithClock(clock.Now)), "after a restart")
}

// TestResetWithGraceKeepsOnlyTheReplacedKey: a reset with a grace keeps the
// key it replaces in grace and revokes any older one.
func TestResetWithGraceKeepsOnlyTheReplacedKey(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	k1 := mustCreate(t, db, "acme", "pro", 10)
	r2, err := db.ResetPrimaryKey(ctx, SystemActor, k1.Account.ID, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	r3, err := db.ResetPrimaryKey(ctx, SystemActor, k1.Account.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(r3.Revoked) != 1 || r3.Revoked[0].ID != k1.Key.ID || r3.Revoked[0].Status != KeyRevoked {
		t.Errorf("the second reset revoked %+v, want K1 only", r3.Revoked)
	}
	now := clock.Now()
	if err := checkKey(t, db, k1.Secret, now); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("K1 after the second reset: %v, want ErrKeyRevoked", err)
	}
	for _, s := range []string{r2.Secret, r3.Secret} {
		if err := checkKey(t, db, s, now); err != nil {
			t.Errorf("key ...%s: %v", KeyHint(s), err)
		}
	}
	k2, err := db.GetKey(ctx, k1.Account.ID, r2.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.InGraceAt(now) || !k2.ValidUntil.Equal(now.Add(time.Hour)) {
		t.Errorf("K2 = %+v, want in grace until %v", k2, now.Add(time.Hour))
	}
	if k3, _ := db.GetKey(ctx, k1.Account.ID, r3.Key.ID); k3.InGraceAt(now) {
		t.Error("the current primary key counts as in grace")
	}
	evs := keyRevokedEvents(t, db, k1.Key.ID)
	if len(evs) != 1 {
		t.Fatalf("K1: %d key.revoked events, want 1", len(evs))
	}
	checkRevokedEvent(t, evs[0], k1, RevokedByReset, now)
	// K2's grace ends as the reset said.
	clock.Add(time.Hour)
	if err := checkKey(t, db, r2.Secret, clock.Now()); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("K2 after its grace: %v", err)
	}
	if n, err := db.RevokeEndedGrace(ctx); err != nil || n != 1 {
		t.Errorf("RevokeEndedGrace: %d, %v; want K2", n, err)
	}
	evs = keyRevokedEvents(t, db, r2.Key.ID)
	if len(evs) != 1 {
		t.Fatalf("K2: %d key.revoked events, want 1", len(evs))
	}
	checkRevokedEvent(t, evs[0], Created{Account: k1.Account, Key: r2.Key, Secret: r2.Secret}, RevokedGraceEnded, clock.Now())
}

func TestRevokeGrace(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 10)
	other := mustCreate(t, db, "other", "pro", 10)
	alias, err := db.CreateAlias(ctx, SystemActor, c.Account.ID, NewAlias{Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.ResetPrimaryKey(ctx, SystemActor, c.Account.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	owner := Actor{Type: ActorPrimary, KeyID: r.Key.ID, IP: "198.51.100.7"}

	// Refused: the current primary, an alias, another account's key.
	var inv *InvalidError
	for _, id := range []string{r.Key.ID, alias.Key.ID} {
		expectNoEvent(t, db, "revoke "+id, func() error {
			_, err := db.RevokeGrace(ctx, owner, c.Account.ID, id)
			if !errors.As(err, &inv) || inv.Fields["id"] == "" {
				t.Errorf("RevokeGrace(%s) = %v, want an InvalidError on id", id, err)
			}
			return err
		})
	}
	expectNoEvent(t, db, "another account's key", func() error {
		_, err := db.RevokeGrace(ctx, owner, other.Account.ID, c.Key.ID)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeGrace of another account's key = %v, want ErrNotFound", err)
		}
		return err
	})
	if err := checkKey(t, db, c.Secret, clock.Now()); err != nil {
		t.Fatalf("refused revocations touched the key in grace: %v", err)
	}

	e := expectOneEvent(t, db, clock, EventKeyRevoked, c.Account.ID, owner, func() error {
		k, err := db.RevokeGrace(ctx, owner, c.Account.ID, c.Key.ID)
		if err == nil && (k.ID != c.Key.ID || k.Status != KeyRevoked || k.InGraceAt(clock.Now()) || !k.ValidUntil.Equal(clock.Now())) {
			t.Errorf("revoked key = %+v", k)
		}
		return err
	})
	checkRevokedEvent(t, e, c, RevokedEarly, clock.Now())
	// The very next validation refuses it; the others still work.
	if err := checkKey(t, db, c.Secret, clock.Now()); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("key after its grace was ended: %v, want ErrKeyRevoked", err)
	}
	for _, s := range []string{r.Secret, alias.Secret} {
		if err := checkKey(t, db, s, clock.Now()); err != nil {
			t.Errorf("key ...%s after ending another's grace: %v", KeyHint(s), err)
		}
	}
	// Again: nothing to do, nothing emitted, the key as it is.
	before := lastSeq(t, db)
	if k, err := db.RevokeGrace(ctx, owner, c.Account.ID, c.Key.ID); err != nil || k.Status != KeyRevoked {
		t.Errorf("revoking a revoked key: %+v, %v", k, err)
	}
	if evs := readEvents(t, db, before); len(evs) != 0 {
		t.Errorf("revoking a revoked key emitted %+v", evs)
	}
	if n, err := db.RevokeEndedGrace(ctx); err != nil || n != 0 {
		t.Errorf("the grace job found %d keys (%v) after an early end", n, err)
	}
}
