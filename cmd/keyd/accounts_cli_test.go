package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"keyd/store"
)

var accountsHeader = []string{"ID", "NAME", "EMAIL", "PLAN", "STATUS", "CREDITS", "PARENT", "CREATED"}

func TestCLIAccountsSearch(t *testing.T) {
	c := newCLI(t)
	acme, _ := c.createAccount("--name", "Acme Studio", "--email", "ops@studio.test")
	c.createAccount("--name", "Beta", "--email", "beta@example.com")
	second, _ := c.createAccount("--name", "Gamma", "--email", "it@ACME.test")
	ids := func(args ...string) string {
		t.Helper()
		var out []string
		for _, r := range tableRows(t, c.mustRun(append([]string{"accounts", "list"}, args...)...), accountsHeader...) {
			out = append(out, r[0])
		}
		return strings.Join(out, ",")
	}
	if got := ids("--search", "acme"); got != acme+","+second {
		t.Errorf("accounts list --search acme: %s, want %s,%s", got, acme, second)
	}
	if got := ids("--search", "acme", "--after", acme); got != second {
		t.Errorf("accounts list --search acme --after: %s, want %s", got, second)
	}
	if got := ids("--search", "nobody"); got != "" {
		t.Errorf("accounts list --search nobody: %s", got)
	}
	if _, _, err := c.run("accounts", "list", "--after", "acc_0000000000000000"); err == nil || !strings.Contains(err.Error(), "after") {
		t.Errorf("accounts list --after an unknown id: %v", err)
	}
}

func TestCLIAccountsSuspend(t *testing.T) {
	c := newCLI(t)
	id, key := c.createAccount("--name", "Acme", "--email", "ops@acme.test")
	check := func() error {
		t.Helper()
		db, err := store.Open(context.Background(), c.path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		v, ok := db.LookupKey(store.HashKey(key))
		if !ok {
			t.Fatal("key not in the index")
		}
		return v.Check(db.Now())
	}
	if out := c.mustRun("accounts", "suspend", "--account", id); out != "account "+id+" is suspended\n" {
		t.Errorf("accounts suspend printed %q", out)
	}
	if err := check(); !errors.Is(err, store.ErrAccountSuspended) {
		t.Errorf("key of a suspended account: %v", err)
	}
	if rows := tableRows(t, c.mustRun("accounts", "list"), accountsHeader...); rows[0][4] != "suspended" {
		t.Errorf("accounts list after suspend: %q", rows[0])
	}
	if out := c.mustRun("accounts", "unsuspend", "--account", id); out != "account "+id+" is active\n" {
		t.Errorf("accounts unsuspend printed %q", out)
	}
	if err := check(); err != nil {
		t.Errorf("key after unsuspend: %v", err)
	}
	for _, verb := range []string{"suspend", "unsuspend"} {
		if _, _, err := c.run("accounts", verb, "--account", "acc_0000000000000000"); err == nil || !strings.Contains(err.Error(), "no such account") {
			t.Errorf("accounts %s of a missing account: %v", verb, err)
		}
		for _, args := range [][]string{{}, {"--account"}, {"stray"}} {
			if _, _, err := c.run(append([]string{"accounts", verb}, args...)...); !errors.As(err, new(usageError)) {
				t.Errorf("accounts %s %v: %v, want a usage error", verb, args, err)
			}
		}
	}
}

var newKeyLine = regexp.MustCompile(`(?m)^new primary key \(shown only now, store it safely\): ([A-Za-z0-9]{20})$`)

func TestCLIAccountsResetKey(t *testing.T) {
	c := newCLI(t)
	id, lost := c.createAccount("--name", "Acme", "--email", "ops@acme.test")
	reset := func(args ...string) (string, string) {
		t.Helper()
		out := c.mustRun(append([]string{"accounts", "reset-key", "--account", id}, args...)...)
		m := newKeyLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("accounts reset-key printed:\n%s", out)
		}
		return m[1], out
	}
	k2, out := reset("--grace", "24h")
	if !strings.Contains(out, "the old key ..."+store.KeyHint(lost)+" stops working at ") || strings.Contains(out, lost) {
		t.Errorf("accounts reset-key --grace 24h printed:\n%s", out)
	}
	k3, out := reset()
	if !strings.Contains(out, "the old key ..."+store.KeyHint(k2)+" stops working now") ||
		!strings.Contains(out, "key ..."+store.KeyHint(lost)+", still in the grace of an earlier reset, stopped working now") {
		t.Errorf("accounts reset-key printed:\n%s", out)
	}

	db, err := store.Open(context.Background(), c.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range []string{lost, k2} {
		v, _ := db.LookupKey(store.HashKey(k))
		if err := v.Check(db.Now()); !errors.Is(err, store.ErrKeyRevoked) {
			t.Errorf("key ...%s after the resets: %v, want revoked", store.KeyHint(k), err)
		}
	}
	if v, ok := db.LookupKey(store.HashKey(k3)); !ok || v.Check(db.Now()) != nil || v.AccountID != id {
		t.Errorf("the new key does not validate for %s", id)
	}
	audit, err := db.ListAudit(context.Background(), id, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	var resets []string
	for _, a := range audit {
		if a.Action == store.EventKeyReset || a.Action == store.EventKeyRevoked {
			resets = append(resets, a.Action+" by "+a.Actor.Type)
		}
	}
	if got := strings.Join(resets, ","); got != "key.revoked by operator,key.reset by operator,key.reset by operator" {
		t.Errorf("audit log, newest first: %s", got)
	}

	if _, _, err := c.run("accounts", "reset-key", "--account", "acc_0000000000000000"); err == nil || !strings.Contains(err.Error(), "no such account") {
		t.Errorf("accounts reset-key of a missing account: %v", err)
	}
	for _, args := range [][]string{{}, {"--account", id, "--grace", "169h"}, {"--account", id, "--grace", "soon"}, {"--account", id, "--grace", "-1h"}} {
		if _, _, err := c.run(append([]string{"accounts", "reset-key"}, args...)...); !errors.As(err, new(usageError)) {
			t.Errorf("accounts reset-key %v: %v, want a usage error", args, err)
		}
	}
}

var signInLinkLine = regexp.MustCompile(`(?m)^https://keys\.example\.com/console/sign-in/link\?token=([A-Za-z0-9_-]{43})$`)

func TestCLIAccountsSignInLink(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "ops@acme.test")
	out := c.mustRun("accounts", "sign-in-link", "--account", id, "--url", "https://keys.example.com/")
	m := signInLinkLine.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "one-time sign-in link for account "+id+", valid until ") {
		t.Fatalf("accounts sign-in-link printed:\n%s", out)
	}
	db, err := store.Open(context.Background(), c.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.SignInLinkAccount(context.Background(), m[1]); err != nil || got != id {
		t.Fatalf("the printed link opens %q, %v; want %s", got, err, id)
	}
	if _, _, err := c.run("accounts", "sign-in-link", "--account", "acc_0000000000000000"); err == nil || !strings.Contains(err.Error(), "no such account") {
		t.Errorf("sign-in-link for a missing account: %v", err)
	}
	if _, _, err := c.run("accounts", "sign-in-link"); !errors.As(err, new(usageError)) {
		t.Errorf("sign-in-link without --account: %v, want a usage error", err)
	}
}
