package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSessionTimeouts(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	acc := mustCreate(t, db, "acme", "free", 0)

	token, err := db.CreateSession(ctx, acc.Account.ID, acc.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM console_sessions WHERE token_hash = ?`, []byte(token)); n != 0 {
		t.Fatal("the token itself is stored; only its hash may be")
	}
	s, err := db.Session(ctx, token)
	if err != nil || s.AccountID != acc.Account.ID || s.KeyID != acc.Key.ID {
		t.Fatalf("Session = %+v, %v", s, err)
	}
	if _, err := db.Session(ctx, token+"x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another token: %v, want ErrNotFound", err)
	}

	// Used every 11 hours, it outlives the idle timeout but not its maximum age.
	for used := time.Duration(0); used+11*time.Hour < SessionMaxAge; used += 11 * time.Hour {
		clock.Add(11 * time.Hour)
		if _, err := db.Session(ctx, token); err != nil {
			t.Fatalf("after %v in use: %v", used+11*time.Hour, err)
		}
	}
	clock.Set(t0.Add(SessionMaxAge))
	if _, err := db.Session(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("at its maximum age: %v, want ErrNotFound", err)
	}

	// Left alone for 12 hours, it ends.
	token, err = db.CreateSession(ctx, acc.Account.ID, acc.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(SessionIdleTimeout - time.Second)
	if _, err := db.Session(ctx, token); err != nil {
		t.Fatalf("just before the idle timeout: %v", err)
	}
	clock.Add(SessionIdleTimeout)
	if _, err := db.Session(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("idle for 12h: %v, want ErrNotFound", err)
	}

	// Signing out ends it.
	token, _ = db.CreateSession(ctx, acc.Account.ID, acc.Key.ID)
	if err := db.EndSession(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after sign-out: %v, want ErrNotFound", err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM console_sessions`); n != 0 {
		t.Fatalf("%d ended sessions left in the table", n)
	}
}

func TestSessionsEndOnResetAndSuspension(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	acc := mustCreate(t, db, "acme", "free", 0)
	other := mustCreate(t, db, "other", "free", 0)

	a1, _ := db.CreateSession(ctx, acc.Account.ID, acc.Key.ID)
	a2, _ := db.CreateSession(ctx, acc.Account.ID, acc.Key.ID)
	o1, _ := db.CreateSession(ctx, other.Account.ID, other.Key.ID)
	// A reset with a grace period: the old key still validates, but every
	// session opened with it ends at once.
	reset, err := db.ResetPrimaryKey(ctx, Actor{Type: ActorPrimary, KeyID: acc.Key.ID, Channel: ChannelConsole}, acc.Account.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{a1, a2} {
		if _, err := db.Session(ctx, tok); !errors.Is(err, ErrNotFound) {
			t.Fatalf("session after reset: %v, want ErrNotFound", err)
		}
	}
	if _, err := db.Session(ctx, o1); err != nil {
		t.Fatalf("another account's session ended too: %v", err)
	}
	// The reset is recorded as the console's.
	audit, err := db.ListAudit(ctx, acc.Account.ID, "", 1)
	if err != nil || len(audit) != 1 || audit[0].Action != EventKeyReset || audit[0].Actor.Channel == nil || *audit[0].Actor.Channel != ChannelConsole {
		t.Fatalf("audit = %+v, %v; want key.reset on the console channel", audit, err)
	}

	// The new key signs in; suspending the account ends that session.
	a3, _ := db.CreateSession(ctx, acc.Account.ID, reset.Key.ID)
	if _, err := db.Session(ctx, a3); err != nil {
		t.Fatal(err)
	}
	suspended := AccountSuspended
	if _, err := db.UpdateAccount(ctx, OperatorActor(""), acc.Account.ID, AccountPatch{Status: &suspended}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ctx, a3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session of a suspended account: %v, want ErrNotFound", err)
	}
	// API actions carry no channel.
	audit, _ = db.ListAudit(ctx, acc.Account.ID, "", 1)
	if len(audit) != 1 || audit[0].Actor.Channel != nil {
		t.Fatalf("operator's event has channel %v, want none", audit[0].Actor.Channel)
	}
}
