package store

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/events.golden from the current code")

// eventsGolden holds every event's data, as the audit log shows it, and the
// body of every webhook message, as receivers get it, from one run of
// TestEventPayloadsGolden. It is the wire format (payloads.go, events.go): a
// change of a field's name, order, type or omission fails the test.
var eventsGolden = filepath.Join("testdata", "events.golden")

// TestEventPayloadsGolden makes every kind of change that appends an event,
// on a fake clock, fans the events out to two endpoints ("*" with
// "alias.*", and "key.*"), and compares the data of each event and the body
// of each message, byte for byte, with testdata/events.golden. Ids and
// hints are random, so each is replaced by a name given in order of first
// appearance.
func TestEventPayloadsGolden(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	op := OperatorActor("203.0.113.5")
	step := func() { clock.Add(1500 * time.Millisecond) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// Operator: plans and accounts.
	_, err := db.PutPlan(ctx, op, Plan{Name: "gold", AliasLimit: ptr(3), RateLimitPerMinute: ptr(600)})
	must(err)
	step()
	acc, err := db.CreateAccount(ctx, op, NewAccount{Name: "Acme & Sons <EU>", Email: "o@acme.test", Plan: "pro", Credits: 100})
	must(err)
	id := acc.Account.ID
	owner := Actor{Type: ActorPrimary, KeyID: acc.Key.ID, IP: "198.51.100.1"}
	step()
	_, err = db.UpdateAccount(ctx, op, id, AccountPatch{Plan: ptr("gold"), SetAliasLimit: true, AliasLimitOverride: ptr(7)})
	must(err)
	step()
	_, err = db.UpdateAccount(ctx, op, id, AccountPatch{Status: ptr(AccountSuspended), SetSubaccountLimit: true, SubaccountLimitOverride: ptr(2)})
	must(err)
	step()
	_, err = db.UpdateAccount(ctx, op, id, AccountPatch{Status: ptr(AccountActive), SetAliasLimit: true})
	must(err)
	step()
	_, err = db.AddCredits(ctx, op, id, 900, "purchase <order 7>")
	must(err)
	step()
	must(db.SetLowCreditThreshold(ctx, op, id, ptr(int64(995))))
	step()
	must(db.SetLowCreditThreshold(ctx, op, id, nil))
	step()
	must(db.SetLowCreditThreshold(ctx, op, id, ptr(int64(990))))
	step()

	// Webhook endpoints: every event after this one is sent as well.
	w, err := db.CreateWebhook(ctx, owner, id, NewWebhook{URL: "https://receiver.example/hook?a=1&b=2",
		Description: "billing <ops>", Events: []string{"*"}, Secret: testSecret()})
	must(err)
	step()
	_, err = db.UpdateWebhook(ctx, owner, id, w.ID, WebhookPatch{Description: ptr("billing"), Events: []string{"*", "alias.*"}})
	must(err)
	step()
	_, err = db.RotateWebhookSecret(ctx, owner, id, w.ID, testSecret(), 24*time.Hour)
	must(err)
	step()
	gone, err := db.CreateWebhook(ctx, owner, id, NewWebhook{URL: "https://gone.example/", Events: []string{"key.*"}, Secret: testSecret()})
	must(err)
	step()
	temp, err := db.CreateWebhook(ctx, owner, id, NewWebhook{URL: "https://temp.example/", Events: []string{"*"}, Secret: testSecret()})
	must(err)
	step()
	must(db.DeleteWebhook(ctx, owner, id, temp.ID))
	step()
	_, err = db.SendTestMessage(ctx, owner, id, w.ID)
	must(err)
	step()

	// Keys: the primary key and aliases.
	_, err = db.PatchPrimaryKey(ctx, owner, id, acc.Key.ID, PrimaryPatch{Name: ptr("main"), Scopes: []string{"*"},
		LimitsPatch: LimitsPatch{SetSpendLimit: true, SpendLimit: &SpendLimit{Limit: 5000, Period: PeriodMonth}}})
	must(err)
	step()
	expires := clock.Now().Add(48 * time.Hour)
	alias, err := db.CreateAlias(ctx, owner, id, NewAlias{Name: "client-a", ExpiresAt: &expires, Scopes: []string{"*"},
		AllowedSites: []string{"shop.example"}, SpendLimit: &SpendLimit{Limit: 4, Period: PeriodDay}, MaxSites: ptr(2)})
	must(err)
	step()
	_, err = db.UpdateAlias(ctx, owner, id, alias.Key.ID, AliasPatch{Name: ptr("client-b")})
	must(err)
	step()
	_, err = db.SetAliasStatus(ctx, owner, id, alias.Key.ID, false)
	must(err)
	step()
	_, err = db.SetAliasStatus(ctx, owner, id, alias.Key.ID, true)
	must(err)
	step()
	plain, err := db.CreateAlias(ctx, owner, id, NewAlias{Name: "plain"})
	must(err)
	step()

	// Validation's side effects: sites and spending.
	v := mustLookup(t, db, alias.Secret)
	_, err = db.UseSite(ctx, v, "https://shop.example/", clock.Now())
	must(err)
	step()
	_, err = db.ReleaseSite(ctx, owner, id, alias.Key.ID, "shop.example")
	must(err)
	step()
	_, err = db.Spend(ctx, &v, 4, "")
	must(err)
	step()
	pv := mustLookup(t, db, acc.Secret)
	_, err = db.Spend(ctx, &pv, 11, "")
	must(err)
	step()

	// Resets: one with a grace period, one that cuts it short, and a grace
	// period that ends by itself.
	r1, err := db.ResetPrimaryKey(ctx, owner, id, time.Hour)
	must(err)
	step()
	owner.KeyID = r1.Key.ID
	r2, err := db.ResetPrimaryKey(ctx, owner, id, time.Hour)
	must(err)
	owner.KeyID = r2.Key.ID
	step()
	_, err = db.RevokeGrace(ctx, owner, id, r2.Previous.ID)
	must(err)
	step()
	r3, err := db.ResetPrimaryKey(ctx, owner, id, time.Minute)
	must(err)
	owner.KeyID = r3.Key.ID
	clock.Add(2 * time.Minute)
	_, err = db.RevokeEndedGrace(ctx)
	must(err)
	step()

	// Aliases that expire, and one deleted.
	clock.Add(47 * time.Hour)
	_, _, err = db.ExpireAliases(ctx, 2*time.Hour)
	must(err)
	clock.Add(2 * time.Hour)
	_, _, err = db.ExpireAliases(ctx, 2*time.Hour)
	must(err)
	step()
	must(db.DeleteAlias(ctx, owner, id, plain.Key.ID))
	step()

	// Subaccounts and credits between them.
	sub, err := db.CreateSubaccount(ctx, owner, id, NewAccount{Name: "Client <B>", Email: "b@client.test", Credits: 30})
	must(err)
	step()
	_, err = db.AllocateCredits(ctx, owner, id, sub.Account.ID, -10)
	must(err)
	step()
	_, err = db.SuspendSubaccount(ctx, owner, id, sub.Account.ID, true)
	must(err)
	step()
	_, err = db.SuspendSubaccount(ctx, owner, id, sub.Account.ID, false)
	must(err)
	step()

	// The console, and webhooks going away.
	_, _, err = db.CreateSignInLink(ctx, op, id)
	must(err)
	step()
	_, err = db.FanOut(ctx)
	must(err)
	due, err := db.ClaimDueMessages(ctx, "worker", clock.Now(), time.Minute, 100)
	must(err)
	for _, m := range due {
		if m.EndpointID == gone.ID {
			must(db.RecordAttempt(ctx, AttemptRecord{MessageID: m.ID, Owner: "worker", At: clock.Now(), StatusCode: 410,
				Outcome: "gone", Gone: true}))
			break
		}
	}
	_, err = db.FanOut(ctx)
	must(err)

	var got bytes.Buffer
	rows, err := db.r.QueryContext(ctx, `SELECT seq, type, data FROM events ORDER BY seq`)
	must(err)
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var (
			seq       int64
			typ, data string
		)
		must(rows.Scan(&seq, &typ, &data))
		seen[typ] = true
		fmt.Fprintf(&got, "%d %s %s\n", seq, typ, data)
	}
	must(rows.Err())
	msgs, err := db.r.QueryContext(ctx, `SELECT m.event_seq, m.endpoint_id, m.body
		FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id ORDER BY m.event_seq, e.rowid`)
	must(err)
	defer msgs.Close()
	for msgs.Next() {
		var (
			seq            int64
			endpoint, body string
		)
		must(msgs.Scan(&seq, &endpoint, &body))
		fmt.Fprintf(&got, "%d message to %s %s\n", seq, map[string]string{w.ID: "first", gone.ID: "second"}[endpoint], body)
	}
	must(msgs.Err())
	for _, typ := range allEventTypesForGolden {
		if !seen[typ] {
			t.Errorf("the scenario appends no %s event", typ)
		}
	}
	out := normaliseIDs(got.Bytes())

	if *updateGolden {
		must(os.MkdirAll(filepath.Dir(eventsGolden), 0o755))
		must(os.WriteFile(eventsGolden, out, 0o644))
	}
	want, err := os.ReadFile(eventsGolden)
	if err != nil {
		t.Fatalf("%v (run go test ./store -run TestEventPayloadsGolden -update)", err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("event payloads differ from %s: the audit log and webhook receivers would see a change.\ngot:\n%s\nwant:\n%s",
			eventsGolden, out, want)
	}
}

// allEventTypesForGolden is every event type keyd appends.
var allEventTypesForGolden = []string{
	EventKeyReset, EventKeyRevoked, EventAliasCreated, EventAliasUpdated, EventAliasDeactivated,
	EventAliasReactivated, EventAliasDeleted, EventAliasExpiring, EventAliasExpired, EventSubaccountCreated,
	EventCreditsAllocated, EventCreditsLow, EventKeySpendLimitReached, EventSiteActivated, EventSiteReleased,
	EventAccountCreated, EventAccountUpdated, EventCreditsAdded, EventPlanUpdated, EventKeyUpdated,
	EventSubaccountSuspended, EventSubaccountUnsuspended, EventSignInLink,
	EventWebhookTest, EventWebhookDisabled, EventWebhookCreated, EventWebhookUpdated, EventWebhookDeleted,
	EventWebhookSecretRotated,
}

var (
	randomID   = regexp.MustCompile(`:"(acc|key|wh|msg)_[A-Za-z0-9]+"`)
	randomHint = regexp.MustCompile(`"hint":"[^"]*"`)
)

// normaliseIDs replaces each random id (a value, never a field name) and hint with a stable name, the
// same name wherever the same value appears.
func normaliseIDs(b []byte) []byte {
	names := map[string]string{}
	count := map[string]int{}
	name := func(kind, v string) string {
		if n, ok := names[v]; ok {
			return n
		}
		count[kind]++
		names[v] = fmt.Sprintf("%s_%d", kind, count[kind])
		return names[v]
	}
	b = randomID.ReplaceAllFunc(b, func(m []byte) []byte {
		kind, _, _ := bytes.Cut(m[2:], []byte("_"))
		return []byte(`:"` + name(string(kind), string(m)) + `"`)
	})
	return randomHint.ReplaceAllFunc(b, func(m []byte) []byte {
		return []byte(`"hint":"` + name("hint", string(m)) + `"`)
	})
}
