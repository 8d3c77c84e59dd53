//go:build postgres

package store

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// On PostgreSQL transactions of several processes run side by side (read
// committed): these tests hold the write lock in a transaction of their
// own, as another process mid-way through a write would, and check what a
// fan-out or a claim that waits for it does once it is let go.

// holdInTx begins a write transaction on the database at dsn, as db's
// engine begins one (taking the write lock), runs stmts in it and returns
// it uncommitted.
func holdInTx(t *testing.T, db *DB, dsn string, stmts ...string) *sql.Tx {
	t.Helper()
	raw, err := OpenSQL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if err := db.eng.BeginWrite(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return tx
}

// waitForLockWait waits until a session of db's database waits for a lock.
func waitForLockWait(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for queryInt(t, db, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no session waits for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A fan-out that starts while another is under way waits for it and goes on
// from where it left the cursor: each event is fanned out once.
func TestConcurrentFanOutWaitsForTheCursor(t *testing.T) {
	ctx := context.Background()
	db, _, dsn := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	createTestWebhook(t, db, acc.Account.ID, "alias.*")
	if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "one"}); err != nil {
		t.Fatal(err)
	}
	// Another process has fanned the events out (its messages are
	// elsewhere, so that a second fan-out would show) and not committed.
	other := holdInTx(t, db, dsn, `UPDATE webhook_cursor SET last_seq = (SELECT max(seq) FROM events) WHERE id = 1`)

	done := make(chan error, 1)
	var n int
	go func() {
		var err error
		n, err = db.FanOut(ctx)
		done <- err
	}()
	waitForLockWait(t, db)
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n != 0 || queryInt(t, db, `SELECT count(*) FROM webhook_messages`) != 0 {
		t.Fatalf("the waiting fan-out wrote %d messages for events fanned out before it", n)
	}
}

// A claim that starts while another is under way waits for it and sees its
// leases: two processes whose clocks are a second apart never have two
// messages of one endpoint in flight, even when the earlier message is due
// for one of them only.
func TestConcurrentClaimWaitsForTheOther(t *testing.T) {
	ctx := context.Background()
	db, clock, dsn := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	w, _ := createTestWebhook(t, db, acc.Account.ID, "alias.*")
	for _, name := range []string{"one", "two"} {
		if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.FanOut(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := messagesFor(t, db, acc.Account.ID, w.ID)
	// The first message failed once and is due again at retry; the
	// second is due since the fan-out.
	claimNext(t, db, "a", clock.Now(), msgs[0].ID)
	retry := clock.Now().Add(time.Minute)
	if err := db.RecordAttempt(ctx, AttemptRecord{MessageID: msgs[0].ID, Owner: "a", At: clock.Now(), StatusCode: 500,
		Outcome: "retry", NextAttemptAt: &retry}); err != nil {
		t.Fatal(err)
	}

	// Process a, at retry, claims the first message and has not
	// committed; process b's clock is a second behind.
	other := holdInTx(t, db, dsn)
	if _, err := other.Exec(`UPDATE webhook_messages SET lease_owner = 'a', lease_until = ? WHERE id = ?`,
		retry.Add(time.Minute).Unix(), msgs[0].ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var claimed []OutboxMessage
	go func() {
		var err error
		claimed, err = db.ClaimDueMessages(ctx, "b", retry.Add(-time.Second), time.Minute, 10)
		done <- err
	}()
	waitForLockWait(t, db)
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 0 {
		t.Fatalf("b claimed %s while a holds %s of the same endpoint", claimed[0].ID, msgs[0].ID)
	}
}
