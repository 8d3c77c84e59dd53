package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestKeyStatus pins the one rule every view of a key's status follows.
func TestKeyStatus(t *testing.T) {
	now := t0
	past, future := now.Add(-time.Second).Unix(), now.Add(time.Second).Unix()
	at := now.Unix()
	for _, tt := range []struct {
		stored                string
		expiresAt, validUntil int64
		want                  string
	}{
		{KeyActive, 0, 0, KeyActive},
		{KeyActive, future, 0, KeyActive},
		{KeyActive, at, 0, KeyExpired}, // to the second
		{KeyActive, past, 0, KeyExpired},
		{KeyActive, 0, future, KeyActive}, // a reset key in its grace
		{KeyActive, 0, at, KeyRevoked},
		{KeyActive, 0, past, KeyRevoked},
		{KeyActive, past, past, KeyRevoked}, // revoked wins over expired
		{KeyInactive, 0, 0, KeyInactive},
		{KeyInactive, future, 0, KeyInactive},
		{KeyInactive, past, 0, KeyExpired}, // expired wins over inactive
		{KeyInactive, at, 0, KeyExpired},
		{KeyExpired, 0, 0, KeyExpired},
		{KeyExpired, future, 0, KeyExpired}, // stored by the job
		{KeyRevoked, 0, 0, KeyRevoked},
		{KeyRevoked, past, 0, KeyRevoked},
		{KeyRevoked, 0, future, KeyRevoked}, // grace ended early
	} {
		got := KeyStatus(tt.stored, tt.expiresAt, tt.validUntil, now.Add(400*time.Millisecond))
		if got != tt.want {
			t.Errorf("KeyStatus(%s, expires %+d s, valid until %+d s) = %s, want %s",
				tt.stored, rel(tt.expiresAt, at), rel(tt.validUntil, at), got, tt.want)
		}
		// Key.StatusAt and KeyView.Check agree with it.
		k := Key{Status: tt.stored, ExpiresAt: unixPtr(tt.expiresAt), ValidUntil: unixPtr(tt.validUntil)}
		if s := k.StatusAt(now); s != tt.want {
			t.Errorf("StatusAt = %s, want %s (%+v)", s, tt.want, tt)
		}
		v := KeyView{Status: tt.stored, ExpiresAt: tt.expiresAt, ValidUntil: tt.validUntil, AccountStatus: AccountSuspended}
		want := map[string]error{KeyActive: ErrAccountSuspended, KeyInactive: ErrKeyInactive, KeyExpired: ErrKeyExpired, KeyRevoked: ErrKeyRevoked}[tt.want]
		if err := v.Check(now); !errors.Is(err, want) {
			t.Errorf("Check = %v, want %v (%+v)", err, want, tt)
		}
	}
}

func rel(unix, at int64) int64 {
	if unix == 0 {
		return 0
	}
	return unix - at
}

func unixPtr(unix int64) *time.Time {
	if unix == 0 {
		return nil
	}
	t := time.Unix(unix, 0).UTC()
	return &t
}

// TestDeactivatedAliasPastExpiry: validation, the key list and the alias's
// events all call it expired; a new expiry does not reactivate it.
func TestDeactivatedAliasPastExpiry(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 10)
	expires := t0.Add(time.Hour)
	a, err := db.CreateAlias(ctx, SystemActor, c.Account.ID, NewAlias{Name: "client", ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetAliasStatus(ctx, SystemActor, c.Account.ID, a.Key.ID, false); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Hour)
	if _, _, err := db.ExpireAliases(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := checkKey(t, db, a.Secret, clock.Now()); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("validation: %v, want ErrKeyExpired", err)
	}
	keys, err := db.ListKeys(ctx, c.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if k := keys[len(keys)-1]; k.ID != a.Key.ID || k.StatusAt(clock.Now()) != KeyExpired {
		t.Errorf("ListKeys shows %s as %s, want expired", k.ID, k.StatusAt(clock.Now()))
	}

	// A new expiry keeps it deactivated; validation and the list agree.
	later := clock.Now().Add(time.Hour)
	e := expectOneEvent(t, db, clock, EventAliasUpdated, c.Account.ID, SystemActor, func() error {
		k, err := db.UpdateAlias(ctx, SystemActor, c.Account.ID, a.Key.ID, AliasPatch{SetExpiry: true, ExpiresAt: &later})
		if err == nil && (k.Status != KeyInactive || k.StatusAt(clock.Now()) != KeyInactive) {
			t.Errorf("after a new expiry: stored %s, shown %s; want inactive", k.Status, k.StatusAt(clock.Now()))
		}
		return err
	})
	if !contains(e.data, `"status":"inactive"`) {
		t.Errorf("alias.updated data = %s, want status inactive", e.data)
	}
	if err := checkKey(t, db, a.Secret, clock.Now()); !errors.Is(err, ErrKeyInactive) {
		t.Errorf("validation after a new expiry: %v, want ErrKeyInactive", err)
	}
	// Past the new expiry, a rename's event says expired, as validation does.
	clock.Add(2 * time.Hour)
	e = expectOneEvent(t, db, clock, EventAliasUpdated, c.Account.ID, SystemActor, func() error {
		_, err := db.UpdateAlias(ctx, SystemActor, c.Account.ID, a.Key.ID, AliasPatch{Name: ptr("renamed")})
		return err
	})
	if !contains(e.data, `"status":"expired"`) {
		t.Errorf("alias.updated data = %s, want status expired", e.data)
	}
	if err := checkKey(t, db, a.Secret, clock.Now()); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("validation past the new expiry: %v, want ErrKeyExpired", err)
	}
}
