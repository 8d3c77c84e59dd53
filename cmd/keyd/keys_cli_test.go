package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"keyd/store"
)

// TestCLIKeysRevoke: keys list shows a reset key in its grace period with
// its deadline, and keys revoke ends the grace at once.
func TestCLIKeysRevoke(t *testing.T) {
	c := newCLI(t)
	id, k1 := c.createAccount("--name", "Acme", "--email", "ops@acme.test", "--plan", "pro")
	ctx := context.Background()
	db, err := store.Open(ctx, c.path)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := db.ResetPrimaryKey(ctx, cliActor, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r3, err := db.ResetPrimaryKey(ctx, cliActor, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := db.GetKey(ctx, id, r2.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	header := []string{"ID", "NAME", "TYPE", "HINT", "CREATED", "LAST USED", "EXPIRES", "STATUS"}
	status := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, r := range tableRows(t, c.mustRun("keys", "list", "--account", id), header...) {
			out[r[0]] = r[len(r)-1]
		}
		return out
	}
	k1ID := r3.Revoked[0].ID
	got := status()
	if want := "active, in grace until " + k2.ValidUntil.Format(timeLayout); got[r2.Key.ID] != want {
		t.Errorf("K2 in keys list: %q, want %q", got[r2.Key.ID], want)
	}
	if got[k1ID] != "revoked" || got[r3.Key.ID] != "active" {
		t.Errorf("keys list statuses: %v", got)
	}

	out := c.mustRun("keys", "revoke", "--account", id, "--id", r2.Key.ID)
	if !strings.HasPrefix(out, "key "+r2.Key.ID+" (..."+r2.Key.Hint+") is revoked since ") || strings.Contains(out, r2.Secret) {
		t.Errorf("keys revoke printed %q", out)
	}
	if got := status(); got[r2.Key.ID] != "revoked" || got[r3.Key.ID] != "active" {
		t.Errorf("keys list after keys revoke: %v", got)
	}
	// A keyd opening the database now refuses K1 and K2, and each
	// revocation is in the log: K1's by the second reset, K2's by the CLI.
	db, err = store.Open(ctx, c.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range []string{k1, r2.Secret} {
		v, ok := db.LookupKey(store.HashKey(k))
		if !ok {
			t.Fatal("key not in the index")
		}
		if err := v.Check(db.Now()); !errors.Is(err, store.ErrKeyRevoked) {
			t.Errorf("key ...%s after keys revoke: %v, want revoked", store.KeyHint(k), err)
		}
	}
	v, _ := db.LookupKey(store.HashKey(r3.Secret))
	if err := v.Check(db.Now()); err != nil {
		t.Errorf("current key: %v", err)
	}
	audit, err := db.ListAudit(ctx, id, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, a := range audit {
		if a.Action == store.EventKeyRevoked {
			revoked++
		}
	}
	if revoked != 2 {
		t.Errorf("%d key.revoked in the audit log, want 2", revoked)
	}

	// The current key and aliases are refused; bad arguments are usage errors.
	if _, _, err := c.run("keys", "revoke", "--account", id, "--id", r3.Key.ID); err == nil || !strings.Contains(err.Error(), "current primary key") {
		t.Errorf("keys revoke of the current key: %v", err)
	}
	if _, _, err := c.run("keys", "revoke", "--account", "acc_0000000000000000", "--id", r2.Key.ID); err == nil || !strings.Contains(err.Error(), "no such") {
		t.Errorf("keys revoke in another account: %v", err)
	}
	for _, args := range [][]string{{"keys", "revoke"}, {"keys", "revoke", "--account", id}, {"keys", "revoke", "--id", r2.Key.ID}} {
		if _, _, err := c.run(args...); !errors.As(err, new(usageError)) {
			t.Errorf("keyd %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

// TestCLIKeysListStatusAsValidation: keyd keys list calls a deactivated
// alias past its expiry expired, as validation does.
func TestCLIKeysListStatusAsValidation(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "ops@acme.test", "--plan", "pro")
	ctx := context.Background()
	// Made two hours ago, expired an hour ago, never seen by the expiry job.
	past := time.Now().Add(-2 * time.Hour)
	db, err := store.Open(ctx, c.path, store.WithClock(func() time.Time { return past }))
	if err != nil {
		t.Fatal(err)
	}
	expires := past.Add(time.Hour)
	a, err := db.CreateAlias(ctx, cliActor, id, store.NewAlias{Name: "client", ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetAliasStatus(ctx, cliActor, id, a.Key.ID, false); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rows := tableRows(t, c.mustRun("keys", "list", "--account", id), "ID", "NAME", "TYPE", "HINT", "CREATED", "LAST USED", "EXPIRES", "STATUS")
	if r := rows[len(rows)-1]; r[0] != a.Key.ID || r[len(r)-1] != "expired" {
		t.Errorf("keys list row of the alias = %q, want it expired", r)
	}
}
