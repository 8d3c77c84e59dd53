package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Every event of an account is numbered 1, 2, 3, ... in commit order,
// whatever the other accounts do and however many writers there are, and
// keeps its time to the millisecond.
func TestEventsAreNumberedPerAccountInCommitOrder(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	a := createTestAccount(t, db, "mega")
	b := createTestAccount(t, db, "mega")

	// Changes of two accounts interleaved, from several goroutines.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		for _, acc := range []string{a.Account.ID, b.Account.ID} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.CreateAlias(ctx, SystemActor, acc, NewAlias{Name: fmt.Sprintf("client %d", i)})
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(1234 * time.Millisecond)
	if _, err := db.AddCredits(ctx, SystemActor, a.Account.ID, 5, "top-up"); err != nil {
		t.Fatal(err)
	}

	for _, acc := range []Created{a, b} {
		entries, err := db.ListAudit(ctx, acc.Account.ID, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		// Newest first: n, n-1, ..., 1, in the order of the global log.
		for i, e := range entries {
			if want := int64(len(entries) - i); e.Sequence != want {
				t.Fatalf("%s entry %d (%s) has sequence %d, want %d", acc.Account.ID, i, e.ID, e.Sequence, want)
			}
		}
		if n := len(entries); n < 11 {
			t.Fatalf("%d audit entries, want the account's creation and 10 aliases at least", n)
		}
	}

	// The top-up's time keeps its milliseconds, in the audit log as JSON.
	entries, _ := db.ListAudit(ctx, a.Account.ID, "", 1)
	b1, _ := json.Marshal(entries[0].CreatedAt)
	if want := `"2025-03-14T15:09:27.234Z"`; string(b1) != want {
		t.Fatalf("created_at %s, want %s", b1, want)
	}
	// An event of no account has no number.
	if n := queryInt(t, db, `SELECT count(*) FROM events WHERE account_id IS NULL AND account_seq IS NOT NULL`); n != 0 {
		t.Fatalf("%d events of no account have a sequence", n)
	}
	// The sequence and the time reach the message body as the event has them.
	w, err := db.CreateWebhook(ctx, SystemActor, a.Account.ID, NewWebhook{URL: "https://h.example/", Events: []string{"*"}, Secret: testSecret()})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(5 * time.Millisecond)
	if _, err := db.CreateAlias(ctx, SystemActor, a.Account.ID, NewAlias{Name: "late"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FanOut(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := messagesFor(t, db, a.Account.ID, w.ID)
	if len(msgs) != 1 {
		t.Fatalf("fan-out wrote %d messages, want alias.created only", len(msgs))
	}
	p, err := ParseWebhookBody(msgs[0].Payload)
	if err != nil || p.Type != EventAliasCreated || p.Sequence != 14 || p.Timestamp != "2025-03-14T15:09:27.239Z" {
		t.Fatalf("message body %+v, %v; want alias.created with sequence 14 at 15:09:27.239", p, err)
	}
}

// Migration 8 numbers the events already stored per account in the order
// they were committed and keeps their times, now in milliseconds.
func TestEventSequenceMigration(t *testing.T) {
	db := openMigratedFrom(t, 6, oldSchemaAccount,
		`INSERT INTO accounts (id, name, email, plan, status, credits, created_at, updated_at)
			VALUES ('acc_0000000000000002', 'B', 'b@example.com', 'pro', 'active', 10, 0, 0)`,
		`INSERT INTO events (account_id, type, actor_type, created_at) VALUES
			('acc_0000000000000001', 'account.created', 'operator', 1700000000),
			('acc_0000000000000002', 'account.created', 'operator', 1700000001),
			(NULL, 'plan.updated', 'operator', 1700000002),
			('acc_0000000000000001', 'alias.created', 'primary', 1700000003),
			('acc_0000000000000002', 'alias.created', 'primary', 1700000004),
			('acc_0000000000000001', 'alias.deleted', 'primary', 1700000005)`)
	if got, want := dumpRows(t, db, `SELECT seq, coalesce(account_id, '-'), coalesce(account_seq, '-'), created_at_ms FROM events ORDER BY seq`),
		"1,acc_0000000000000001,1,1700000000000;2,acc_0000000000000002,1,1700000001000;3,-,-,1700000002000;"+
			"4,acc_0000000000000001,2,1700000003000;5,acc_0000000000000002,2,1700000004000;6,acc_0000000000000001,3,1700000005000"; got != want {
		t.Errorf("events after migration:\n got %s\nwant %s", got, want)
	}
	// New events go on from there.
	err := db.write(context.Background(), func(tx *Tx) error {
		ev, err := tx.event(context.Background(), "acc_0000000000000001", EventCreditsAdded, SystemActor, "", CreditsAddedData{AccountID: "acc_0000000000000001"})
		if err == nil && ev.Sequence != 4 {
			err = fmt.Errorf("next event has sequence %d, want 4", ev.Sequence)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.r.Exec(`SELECT created_at FROM events`); err == nil {
		t.Error("events still has created_at in seconds")
	}
}
