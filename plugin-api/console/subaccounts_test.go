package console_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"keyd/store"
)

func TestSubaccountsLikeTheAPI(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	mustContain(t, b.get("/console/subaccounts"), "No subaccounts yet", "100 credits in your pool")

	// Bad input: the API's field rules and words, nothing changes.
	before := e.lastAudit(e.acc.Account.ID).ID
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"name": {"Client"}, "email": {"not-an-email"}, "credits": {"10"}}, 400, `id="sub-email-error">Email is not an email address`},
		{url.Values{"name": {""}, "email": {"c@example.com"}, "credits": {"10"}}, 400, `id="sub-name-error">Name is required`},
		{url.Values{"name": {"Client"}, "email": {"c@example.com"}, "credits": {"ten"}}, 400, `id="sub-credits-error">Credits must be a whole number`},
		{url.Values{"name": {"Client"}, "email": {"c@example.com"}, "credits": {"-5"}}, 400, `id="sub-credits-error">Credits must be at least 0`},
		{url.Values{"name": {"Client"}, "email": {"c@example.com"}, "credits": {"500"}}, 402, "The credit pool cannot cover this"},
	} {
		p := b.post("/console/subaccounts", tc.form)
		if p.status != tc.status {
			t.Fatalf("%v: %d, want %d\n%s", tc.form, p.status, tc.status, p.body)
		}
		mustContain(t, p, tc.msg)
	}
	if e.lastAudit(e.acc.Account.ID).ID != before {
		t.Fatal("a refused form changed something")
	}

	// Created: its key shown once, it validates; credits move from the pool.
	p := b.follow(b.post("/console/subaccounts", url.Values{"name": {"Client <one>"}, "email": {"c@example.com"}, "credits": {"30"}}))
	key := shownSecret(t, p)
	mustContain(t, p, "Client &lt;one&gt;", "70 credits in your pool")
	mustLack(t, p, "Client <one>")
	if got := e.validate(key, "https://c.example/"); got != "VALID" {
		t.Fatalf("subaccount key: %s", got)
	}
	// subaccount.created, then credits.allocated for its credits.
	e.consoleAudit(e.acc.Account.ID, store.EventCreditsAllocated)
	entries, _ := e.db.ListAudit(context.Background(), e.acc.Account.ID, "", 2)
	if len(entries) != 2 || entries[1].Action != store.EventSubaccountCreated || entries[1].Actor.Channel == nil {
		t.Fatalf("audit: %+v", entries)
	}
	subID := *entries[1].TargetID
	mustLack(t, b.get("/console/subaccounts"), key)

	b.follow(b.post("/console/subaccounts/"+subID+"/credits", url.Values{"amount": {"20"}, "direction": {"give"}}))
	b.follow(b.post("/console/subaccounts/"+subID+"/credits", url.Values{"amount": {"5"}, "direction": {"reclaim"}}))
	sub, _ := e.db.GetAccount(context.Background(), subID)
	parent, _ := e.db.GetAccount(context.Background(), e.acc.Account.ID)
	if sub.Credits != 45 || parent.Credits != 55 {
		t.Fatalf("credits: subaccount %d, pool %d; want 45 and 55", sub.Credits, parent.Credits)
	}
	e.consoleAudit(e.acc.Account.ID, store.EventCreditsAllocated)
	if p := b.post("/console/subaccounts/"+subID+"/credits", url.Values{"amount": {"1000"}, "direction": {"give"}}); p.status != http.StatusPaymentRequired {
		t.Fatalf("giving more than the pool: %d", p.status)
	}
	if p := b.post("/console/subaccounts/"+subID+"/credits", url.Values{"amount": {"x"}}); p.status != http.StatusBadRequest {
		t.Fatalf("bad amount: %d", p.status)
	}

	// Suspend and unsuspend: its key is refused at once, then works again.
	b.follow(b.post("/console/subaccounts/"+subID+"/suspend", nil))
	if got := e.validate(key, "https://c.example/"); got != "ACCOUNT_SUSPENDED" {
		t.Fatalf("key of a suspended subaccount: %s", got)
	}
	e.consoleAudit(e.acc.Account.ID, store.EventSubaccountSuspended)
	mustContain(t, b.get("/console/subaccounts"), "Suspended by you", "Unsuspend")
	b.follow(b.post("/console/subaccounts/"+subID+"/unsuspend", nil))
	if got := e.validate(key, "https://c.example/"); got != "VALID" {
		t.Fatalf("key after unsuspending: %s", got)
	}

	// Another account's subaccount is not found.
	other := e.account("Other")
	ob := e.browser()
	ob.signIn(other.Secret)
	ob.get("/console/subaccounts")
	for _, path := range []string{"/credits", "/suspend", "/unsuspend"} {
		if p := ob.post("/console/subaccounts/"+subID+path, url.Values{"amount": {"1"}, "direction": {"reclaim"}}); p.status != http.StatusNotFound {
			t.Fatalf("another account's subaccount %s: %d", path, p.status)
		}
	}
}
