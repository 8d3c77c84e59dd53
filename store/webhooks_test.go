package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"keyd/store/storetest"
)

func testSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func createTestWebhook(t *testing.T, db *DB, accountID string, events ...string) (Webhook, string) {
	t.Helper()
	secret := testSecret()
	w, err := db.CreateWebhook(context.Background(), SystemActor, accountID, NewWebhook{
		URL: "https://receiver.example/hook", Events: events, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return w, secret
}

// messagesFor lists an endpoint's messages, oldest first.
func messagesFor(t *testing.T, db *DB, accountID, webhookID string) []WebhookMessage {
	t.Helper()
	msgs, err := db.ListMessages(context.Background(), accountID, webhookID, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(msgs)
	return msgs
}

func messageTypes(msgs []WebhookMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Type)
	}
	return out
}

func TestWebhookSecretsAreSealedAtRest(t *testing.T) {
	ctx := context.Background()
	// SQLite, whose files are read below, whichever engine the tests run on.
	db, clock, path := openStoreAtPath(t, filepath.Join(t.TempDir(), "keyd.db"))
	acc := createTestAccount(t, db, "pro")
	w, first := createTestWebhook(t, db, acc.Account.ID, "*")
	second := testSecret()
	if _, err := db.RotateWebhookSecret(ctx, SystemActor, acc.Account.ID, w.ID, second, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FanOut(ctx); err != nil {
		t.Fatal(err)
	}

	// The worker gets both secrets during the overlap, the new one first.
	due, err := db.ClaimDueMessages(ctx, "worker", clock.Now(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || !slices.Equal(due[0].Secrets, []string{second, first}) {
		t.Fatalf("due = %+v, want one message signed with the new and the old secret", due)
	}

	// Neither secret, nor its base64 part, nor its raw bytes, is anywhere
	// in the database files.
	var files [][]byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if len(files[0])+len(files[1]) == 0 {
		t.Fatal("the database files are empty")
	}
	for _, s := range []string{first, second} {
		enc := strings.TrimPrefix(s, "whsec_")
		raw, _ := base64.StdEncoding.DecodeString(enc)
		for i, f := range files {
			if bytes.Contains(f, []byte(enc)) || bytes.Contains(f, raw[:16]) {
				t.Fatalf("database file %d contains a webhook secret", i)
			}
		}
	}

	// The master key lives in a private file beside the database.
	st, err := os.Stat(KeyFilePath(path))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}

	// After the overlap only the new secret signs, and pruning drops the old.
	clock.Advance(24*time.Hour + time.Second)
	due, err = db.ClaimDueMessages(ctx, "worker", clock.Now(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || !slices.Equal(due[0].Secrets, []string{second}) {
		t.Fatalf("after the overlap: %d messages, %d secrets; want the new secret only", len(due), len(due[0].Secrets))
	}
	if _, _, err := db.PruneWebhooks(ctx, clock.Now().Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var n int
	db.r.QueryRow(`SELECT count(*) FROM webhook_endpoints WHERE old_secret IS NOT NULL`).Scan(&n)
	if n != 0 {
		t.Fatal("the previous secret is kept after its overlap and a prune")
	}
}

func TestWrongSecretKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	key := make([]byte, SecretKeySize)
	rand.Read(key)
	db, err := Open(ctx, path, WithSecretKey(key))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PrepareSecrets(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(KeyFilePath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was made although a key was given: %v", err)
	}

	other := bytes.Clone(key)
	other[0] ^= 1
	db, err = Open(ctx, path, WithSecretKey(other))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PrepareSecrets(ctx); !errors.Is(err, ErrSecretKeyMismatch) {
		t.Fatalf("PrepareSecrets with another key: %v, want ErrSecretKeyMismatch", err)
	}
	if _, err := ParseSecretKey("c2hvcnQ="); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

func TestFanOutWritesEachMessageOnce(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	other := createTestAccount(t, db, "pro")
	all, _ := createTestWebhook(t, db, acc.Account.ID, "*")
	resets, _ := createTestWebhook(t, db, acc.Account.ID, EventKeyReset)
	foreign, _ := createTestWebhook(t, db, other.Account.ID, "*")

	alias, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResetPrimaryKey(ctx, SystemActor, acc.Account.ID, 0); err != nil {
		t.Fatal(err)
	}
	renamed := "renamed"
	if _, err := db.UpdatePrimaryKey(ctx, SystemActor, acc.Account.ID, acc.Key.ID, &renamed, nil); err == nil {
		t.Fatal("the reset-away primary key could be renamed")
	}
	if _, err := db.UpdateAlias(ctx, SystemActor, acc.Account.ID, alias.Key.ID, AliasPatch{Name: &renamed}); err != nil {
		t.Fatal(err)
	}
	// Audit-only events (credits.added) are not delivered.
	if _, err := db.AddCredits(ctx, SystemActor, acc.Account.ID, 5, "test"); err != nil {
		t.Fatal(err)
	}

	n, err := db.FanOut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("FanOut wrote %d messages, want 4", n)
	}
	if got := messageTypes(messagesFor(t, db, acc.Account.ID, all.ID)); !slices.Equal(got, []string{EventAliasCreated, EventKeyReset, EventAliasUpdated}) {
		t.Fatalf("endpoint for * got %v", got)
	}
	if got := messageTypes(messagesFor(t, db, acc.Account.ID, resets.ID)); !slices.Equal(got, []string{EventKeyReset}) {
		t.Fatalf("endpoint for key.reset got %v", got)
	}
	if got := messagesFor(t, db, other.Account.ID, foreign.ID); len(got) != 0 {
		t.Fatalf("another account's endpoint got %v", messageTypes(got))
	}

	// A crash after the messages were written but before the cursor moved
	// makes the next fan-out read the same events again: no duplicates.
	if _, err := db.w.Exec(`UPDATE webhook_cursor SET last_seq = 0`); err != nil {
		t.Fatal(err)
	}
	if n, err := db.FanOut(ctx); err != nil || n != 0 {
		t.Fatalf("fan-out again: %d messages, %v; want none", n, err)
	}
	if got := len(messagesFor(t, db, acc.Account.ID, all.ID)); got != 3 {
		t.Fatalf("after a repeated fan-out the endpoint has %d messages, want 3", got)
	}

	// An endpoint registered later does not get earlier events, even when
	// the fan-out reads them again; a disabled one gets nothing.
	late, _ := createTestWebhook(t, db, acc.Account.ID, "*")
	off := false
	if _, err := db.UpdateWebhook(ctx, SystemActor, acc.Account.ID, resets.ID, WebhookPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	db.w.Exec(`UPDATE webhook_cursor SET last_seq = 0`)
	if _, err := db.ResetPrimaryKey(ctx, SystemActor, acc.Account.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FanOut(ctx); err != nil {
		t.Fatal(err)
	}
	if got := messageTypes(messagesFor(t, db, acc.Account.ID, late.ID)); !slices.Equal(got, []string{EventKeyReset}) {
		t.Fatalf("endpoint registered later got %v, want only the later key.reset", got)
	}
	if got := len(messagesFor(t, db, acc.Account.ID, resets.ID)); got != 1 {
		t.Fatalf("disabled endpoint has %d messages, want the 1 from before", got)
	}
}

func TestTestMessageGoesToItsEndpointOnly(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	target, _ := createTestWebhook(t, db, acc.Account.ID, EventKeyReset)
	bystander, _ := createTestWebhook(t, db, acc.Account.ID, "*")
	m, err := db.SendTestMessage(ctx, SystemActor, acc.Account.ID, target.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != EventWebhookTest || m.WebhookID != target.ID || m.Status != MessagePending {
		t.Fatalf("test message = %+v", m)
	}
	if n, err := db.FanOut(ctx); err != nil || n != 0 {
		t.Fatalf("fan-out after a test message: %d, %v; want nothing more", n, err)
	}
	if got := messagesFor(t, db, acc.Account.ID, bystander.ID); len(got) != 0 {
		t.Fatalf("the other endpoint got %v", messageTypes(got))
	}
	if _, err := db.SendTestMessage(ctx, SystemActor, createTestAccount(t, db, "pro").Account.ID, target.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("test of another account's webhook: %v, want ErrNotFound", err)
	}
}

func TestChangesSignalsCommittedEvents(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	select {
	case <-db.Changes():
	default:
		t.Fatal("no signal after creating an account")
	}
	select {
	case <-db.Changes():
		t.Fatal("a second signal without a change")
	default:
	}
	// A failed change appends nothing and signals nothing.
	if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "bad name!"}); err == nil {
		t.Fatal("bad alias name accepted")
	}
	select {
	case <-db.Changes():
		t.Fatal("signal after a failed change")
	default:
	}
	if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "good"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-db.Changes():
	default:
		t.Fatal("no signal after creating an alias")
	}
}

func TestWebhookLimitAndOwnership(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	other := createTestAccount(t, db, "pro")
	var first Webhook
	for i := range MaxWebhooksPerAccount {
		w, _ := createTestWebhook(t, db, acc.Account.ID, "*")
		if i == 0 {
			first = w
		}
	}
	if _, err := db.CreateWebhook(ctx, SystemActor, acc.Account.ID, NewWebhook{URL: "https://x.example/", Events: []string{"*"}, Secret: testSecret()}); !errors.Is(err, ErrWebhookLimit) {
		t.Fatalf("webhook over the limit: %v", err)
	}
	if _, err := db.GetWebhook(ctx, other.Account.ID, first.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's webhook: %v", err)
	}
	if err := db.DeleteWebhook(ctx, SystemActor, other.Account.ID, first.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting another account's webhook: %v", err)
	}
	if err := db.DeleteWebhook(ctx, SystemActor, acc.Account.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetWebhook(ctx, acc.Account.ID, first.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted webhook: %v", err)
	}
	if n := countEvents(t, db, EventWebhookDeleted, first.ID); n != 1 {
		t.Fatalf("%d webhook.deleted audit events", n)
	}
}

func TestPruneWebhooksKeepsPendingAndRecent(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	w, _ := createTestWebhook(t, db, acc.Account.ID, "*")
	for _, name := range []string{"a", "b"} {
		if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	db.FanOut(ctx)
	msgs := messagesFor(t, db, acc.Account.ID, w.ID)
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	claimNext(t, db, "worker", clock.Now(), msgs[0].ID)
	if err := db.RecordAttempt(ctx, AttemptRecord{MessageID: msgs[0].ID, Owner: "worker", At: clock.Now(), StatusCode: 200,
		Outcome: "success", Delivered: true}); err != nil {
		t.Fatal(err)
	}
	claimNext(t, db, "worker", clock.Now(), msgs[1].ID)
	next := clock.Now().Add(time.Hour)
	if err := db.RecordAttempt(ctx, AttemptRecord{MessageID: msgs[1].ID, Owner: "worker", At: clock.Now(), StatusCode: 500,
		Outcome: "retry", NextAttemptAt: &next}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * 24 * time.Hour)
	attempts, messages, err := db.PruneWebhooks(ctx, clock.Now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || messages != 1 {
		t.Fatalf("pruned %d attempts and %d messages, want 2 and 1", attempts, messages)
	}
	left := messagesFor(t, db, acc.Account.ID, w.ID)
	if len(left) != 1 || left[0].ID != msgs[1].ID || left[0].Status != MessagePending {
		t.Fatalf("left %+v, want the pending message", left)
	}
}

func TestFailingTooLong(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		failingSince time.Time
		want         bool
	}{
		{"not failing", time.Time{}, false},
		{"failing for an hour", now.Add(-time.Hour), false},
		{"failing for just under 5 days", now.Add(-WebhookDisableAfter + time.Second), false},
		{"failing for 5 days", now.Add(-5 * 24 * time.Hour), true},
		{"failing for a month", now.AddDate(0, -1, 0), true},
		{"failure time in the future", now.Add(time.Hour), false},
	}
	for _, tt := range tests {
		if got := failingTooLong(tt.failingSince, now); got != tt.want {
			t.Errorf("%s: failingTooLong = %v, want %v", tt.name, got, tt.want)
		}
	}
}
