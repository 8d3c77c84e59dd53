package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

type eventRow struct {
	seq                       int64
	accountID, typ, actorType string
	actorID, actorIP, target  sql.NullString
	data                      string
	createdAt                 int64
}

func readEvents(tb testing.TB, db *DB, afterSeq int64) []eventRow {
	tb.Helper()
	rows, err := db.r.Query(`SELECT seq, coalesce(account_id, ''), type, actor_type, actor_id, actor_ip, target_id, data, created_at_ms / 1000
		FROM events WHERE seq > ? ORDER BY seq`, afterSeq)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []eventRow
	for rows.Next() {
		var e eventRow
		if err := rows.Scan(&e.seq, &e.accountID, &e.typ, &e.actorType, &e.actorID, &e.actorIP, &e.target, &e.data, &e.createdAt); err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func lastSeq(tb testing.TB, db *DB) int64 {
	return queryInt(tb, db, `SELECT coalesce(max(seq), 0) FROM events`)
}

// anyAccount tells expectOneEvent not to check the event's account.
const anyAccount = "(any)"

// expectOneEvent runs change and checks that it appended exactly one event of
// type typ for accountID, stamped with the store's clock.
func expectOneEvent(t *testing.T, db *DB, clock *fakeClock, typ, accountID string, actor Actor, change func() error) eventRow {
	t.Helper()
	before := lastSeq(t, db)
	if err := change(); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	evs := readEvents(t, db, before)
	if len(evs) != 1 {
		t.Fatalf("%s appended %d events, want 1: %+v", typ, len(evs), evs)
	}
	e := evs[0]
	if e.typ != typ || (accountID != anyAccount && e.accountID != accountID) || e.actorType != actor.Type ||
		e.actorID.String != actor.KeyID || e.actorIP.String != actor.IP || e.createdAt != clock.Now().Unix() {
		t.Errorf("event = %+v; want type %s account %q actor %+v at %d", e, typ, accountID, actor, clock.Now().Unix())
	}
	if !json.Valid([]byte(e.data)) || !strings.HasPrefix(e.data, "{") {
		t.Errorf("%s data is not a JSON object: %s", typ, e.data)
	}
	return e
}

// expectNoEvent runs a change that must fail and checks that it left no event.
func expectNoEvent(t *testing.T, db *DB, what string, change func() error) {
	t.Helper()
	before := lastSeq(t, db)
	if err := change(); err == nil {
		t.Errorf("%s: want an error", what)
	}
	if evs := readEvents(t, db, before); len(evs) != 0 {
		t.Errorf("%s failed but appended %d events: %+v", what, len(evs), evs)
	}
}

func TestEventsAppendedWithEachChange(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	op := OperatorActor("203.0.113.5")
	var secrets []string

	var c Created
	e := expectOneEvent(t, db, clock, EventAccountCreated, anyAccount, op, func() error {
		var err error
		c, err = db.CreateAccount(ctx, op, NewAccount{Name: "acme", Email: "a@acme.test", Plan: "pro", Credits: 9})
		return err
	})
	// The account id is only known afterwards.
	if e.accountID != c.Account.ID || e.target.String != c.Account.ID {
		t.Errorf("account.created names account %q target %q, want %q", e.accountID, e.target.String, c.Account.ID)
	}
	secrets = append(secrets, c.Secret)
	id := c.Account.ID

	clock.Add(time.Second)
	expectOneEvent(t, db, clock, EventAccountUpdated, id, op, func() error {
		_, err := db.UpdateAccount(ctx, op, id, AccountPatch{Status: ptr(AccountSuspended)})
		return err
	})
	clock.Add(time.Second)
	e = expectOneEvent(t, db, clock, EventCreditsAdded, id, op, func() error {
		_, err := db.AddCredits(ctx, op, id, 41, "purchase")
		return err
	})
	var credits struct {
		Amount  int64  `json:"amount"`
		Credits int64  `json:"credits"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(e.data), &credits); err != nil || credits.Amount != 41 || credits.Credits != 50 || credits.Reason != "purchase" {
		t.Errorf("credits.added data = %s", e.data)
	}

	owner := Actor{Type: ActorPrimary, KeyID: c.Key.ID, IP: "198.51.100.1"}
	for _, grace := range []time.Duration{0, time.Hour} {
		clock.Add(time.Second)
		var r Reset
		e = expectOneEvent(t, db, clock, EventKeyReset, id, owner, func() error {
			var err error
			r, err = db.ResetPrimaryKey(ctx, owner, id, grace)
			return err
		})
		secrets = append(secrets, r.Secret)
		var reset struct {
			KeyID    string `json:"key_id"`
			Hint     string `json:"hint"`
			Previous struct {
				ID         string `json:"id"`
				ValidUntil string `json:"valid_until"`
			} `json:"previous"`
		}
		if err := json.Unmarshal([]byte(e.data), &reset); err != nil || reset.KeyID != r.Key.ID || reset.Hint != r.Key.Hint ||
			reset.Previous.ID != r.Previous.ID || reset.Previous.ValidUntil != r.Previous.ValidUntil.Format(time.RFC3339) {
			t.Errorf("key.reset data = %s; want key %s previous %s", e.data, r.Key.ID, r.Previous.ID)
		}
		if e.target.String != r.Key.ID {
			t.Errorf("key.reset target = %q, want the new key %s", e.target.String, r.Key.ID)
		}
		owner.KeyID = r.Key.ID
	}

	clock.Add(time.Second)
	e = expectOneEvent(t, db, clock, EventPlanUpdated, "", op, func() error {
		_, err := db.PutPlan(ctx, op, Plan{Name: "gold", AliasLimit: ptr(3)})
		return err
	})
	if e.target.String != "gold" {
		t.Errorf("plan.updated target = %q, want gold", e.target.String)
	}

	// Failed changes roll their event back with them, and no-op patches log nothing.
	expectNoEvent(t, db, "credits below zero", func() error { _, err := db.AddCredits(ctx, op, id, -1000, ""); return err })
	expectNoEvent(t, db, "unknown plan", func() error {
		_, err := db.UpdateAccount(ctx, op, id, AccountPatch{Plan: ptr("platinum")})
		return err
	})
	expectNoEvent(t, db, "grace too long", func() error { _, err := db.ResetPrimaryKey(ctx, op, id, 200*time.Hour); return err })
	expectNoEvent(t, db, "account with unknown plan", func() error {
		_, err := db.CreateAccount(ctx, op, NewAccount{Name: "x", Email: "x@x.test", Plan: "nope"})
		return err
	})
	before := lastSeq(t, db)
	if _, err := db.UpdateAccount(ctx, op, id, AccountPatch{Status: ptr(AccountSuspended)}); err != nil {
		t.Fatal(err)
	}
	if evs := readEvents(t, db, before); len(evs) != 0 {
		t.Errorf("a patch that changed nothing appended %+v", evs)
	}

	// No event ever holds a key or its hash, in any encoding.
	all := readEvents(t, db, 0)
	if len(all) != 6 {
		t.Errorf("%d events in all, want 6", len(all))
	}
	for _, ev := range all {
		for _, s := range secrets {
			h := HashKey(s)
			for _, form := range []string{s, hex.EncodeToString(h[:]), strings.ToUpper(hex.EncodeToString(h[:])),
				base64.StdEncoding.EncodeToString(h[:]), base64.RawURLEncoding.EncodeToString(h[:])} {
				if strings.Contains(ev.data, form) {
					t.Errorf("event %d (%s) data holds a key or its hash: %s", ev.seq, ev.typ, ev.data)
				}
			}
		}
	}
}

// The contract's event types (API.md, "Webhooks") and keyd's own two,
// which webhook endpoints receive.
var contractEvents = []string{
	"key.reset", "key.revoked", "alias.created", "alias.updated",
	"alias.deactivated", "alias.reactivated", "alias.deleted",
	"alias.expiring", "alias.expired", "subaccount.created",
	"credits.allocated", "credits.low", "key.spend_limit_reached",
	"site.activated", "site.released",
	"webhook.test", "webhook.disabled",
}

func TestWebhookEventTypes(t *testing.T) {
	got := WebhookEventTypes()
	if fmt.Sprint(got) != fmt.Sprint(contractEvents) {
		t.Fatalf("WebhookEventTypes() = %v, want %v", got, contractEvents)
	}
	got[0] = "mutated"
	if WebhookEventTypes()[0] != "key.reset" {
		t.Fatal("WebhookEventTypes returns the package's own slice")
	}
	for _, e := range contractEvents {
		if !IsWebhookEventType(e) {
			t.Errorf("IsWebhookEventType(%q) = false", e)
		}
	}
	// Audit-only events are never sent.
	for _, e := range []string{"", "*", "alias.*", "key", "Key.Reset", "key.reset ", "alias.renamed",
		EventAccountCreated, EventAccountUpdated, EventCreditsAdded, EventPlanUpdated, EventKeyUpdated,
		EventSubaccountSuspended, EventSubaccountUnsuspended, EventSignInLink,
		EventWebhookCreated, EventWebhookUpdated, EventWebhookDeleted, EventWebhookSecretRotated} {
		if IsWebhookEventType(e) {
			t.Errorf("IsWebhookEventType(%q) = true", e)
		}
	}
	if got := fmt.Sprint(WebhookEventCategories()); got != "[key alias subaccount credits site webhook]" {
		t.Errorf("WebhookEventCategories() = %s", got)
	}
	for c, want := range map[string]bool{"alias": true, "webhook": true, "account": false, "console": false, "": false, "alias.": false} {
		if IsWebhookEventCategory(c) != want {
			t.Errorf("IsWebhookEventCategory(%q) = %v", c, !want)
		}
	}
}

func TestMatchEventPattern(t *testing.T) {
	tests := []struct {
		p, t string
		want bool
	}{
		{"*", "key.reset", true},
		{"*", "webhook.test", true},
		{"*", "alias.something.new", true},
		{"key.reset", "key.reset", true},
		{"key.reset", "key.revoked", false},
		{"key.reset", "key.reset.extra", false},
		{"key.reset", "Key.Reset", false},
		{"alias.*", "alias.created", true},
		{"alias.*", "alias.expiring", true},
		{"alias.*", "alias.renamed", true}, // future types of a category
		{"alias.*", "alias.", false},
		{"alias.*", "alias", false},
		{"alias.*", "aliases.created", false},
		{"alias.*", "key.reset", false},
		{"alias.*", "subalias.created", false},
		{"key.*", "key.reset", true},
		{"key.*", "keyd.reset", false},
		// Malformed patterns match nothing.
		{"", "", false},
		{"", "key.reset", false},
		{".*", ".x", false},
		{"*.*", "key.reset", false},
		{"*.reset", "key.reset", false},
		{"alias*", "alias.created", false},
		{"alias.**", "alias.*x", false},
		{"k*y.reset", "key.reset", false},
		{"alias.created*", "alias.created", false},
	}
	for _, tt := range tests {
		if got := MatchEventPattern(tt.p, tt.t); got != tt.want {
			t.Errorf("MatchEventPattern(%q, %q) = %v, want %v", tt.p, tt.t, got, tt.want)
		}
	}
}

func TestMatchEventPatterns(t *testing.T) {
	tests := []struct {
		ps   []string
		t    string
		want bool
	}{
		{[]string{"key.reset", "alias.*"}, "alias.deleted", true},
		{[]string{"key.reset", "alias.*"}, "key.reset", true},
		{[]string{"key.reset", "alias.*"}, "key.revoked", false},
		{[]string{"key.reset", "alias.*"}, "credits.low", false},
		{[]string{"*"}, "credits.low", true},
		{nil, "key.reset", false},
		{[]string{}, "key.reset", false},
	}
	for _, tt := range tests {
		if got := MatchEventPatterns(tt.ps, tt.t); got != tt.want {
			t.Errorf("MatchEventPatterns(%q, %q) = %v, want %v", tt.ps, tt.t, got, tt.want)
		}
	}
}

func TestNewWebhookBody(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))
	type aliasData struct {
		ID   string `json:"id"`
		Hint string `json:"hint"`
		URL  string `json:"url,omitempty"`
	}
	tests := []struct {
		name    string
		typ     string
		data    any
		want    string
		wantErr string
	}{
		{"struct data", EventAliasCreated, aliasData{ID: "key_1", Hint: "x9Qa"},
			`{"type":"alias.created","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{"id":"key_1","hint":"x9Qa"}}`, ""},
		{"nil data", EventWebhookTest, nil,
			`{"type":"webhook.test","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{}}`, ""},
		{"map data, html characters kept", EventKeyReset, map[string]any{"site": "https://a.example/?x=1&y=<2>"},
			`{"type":"key.reset","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{"site":"https://a.example/?x=1&y=<2>"}}`, ""},
		{"raw data compacted", EventCreditsLow, json.RawMessage("{ \"credits\" : 10 }"),
			`{"type":"credits.low","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{"credits":10}}`, ""},
		{"unknown type", "alias.renamed", nil, "", "unknown event type"},
		{"pattern as type", "alias.*", nil, "", "unknown event type"},
		{"array data", EventAliasDeleted, []string{"a"}, "", "not a JSON object"},
		{"string data", EventAliasDeleted, "a", "", "not a JSON object"},
		{"null raw data", EventAliasDeleted, json.RawMessage("null"), "", "not a JSON object"},
		{"unencodable data", EventAliasDeleted, map[string]any{"f": func() {}}, "", "encode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewWebhookBody(tt.typ, 7, at, tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewWebhookBody err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("NewWebhookBody =\n%s\nwant\n%s", got, tt.want)
			}
			p, err := ParseWebhookBody(got)
			if err != nil {
				t.Fatalf("ParseWebhookBody(NewWebhookBody) = %v", err)
			}
			if p.Type != tt.typ || p.Timestamp != "2026-03-04T04:06:07.890Z" || p.Sequence != 7 {
				t.Fatalf("ParseWebhookBody = %+v", p)
			}
		})
	}
}

func TestNewWebhookBodyIsStable(t *testing.T) {
	// Map keys are sorted by encoding/json, so building the same event
	// twice gives the same bytes; the outbox stores them once anyway.
	data := map[string]any{"b": 1, "a": 2, "c": map[string]any{"z": 1, "y": 2}}
	at := time.Unix(1_700_000_000, 0)
	a, err := NewWebhookBody(EventAliasUpdated, 1, at, data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewWebhookBody(EventAliasUpdated, 1, at, data)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds differ:\n%s\n%s", a, b)
	}
}

func TestParseWebhookBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"minimal", `{"type":"x.y","timestamp":"2026-01-01T00:00:00Z","data":{}}`, true},
		{"future type and extra field", `{"type":"alias.renamed","timestamp":"2026-01-01T00:00:00Z","data":{"a":1},"v":2}`, true},
		{"with sequence and milliseconds", `{"type":"x.y","timestamp":"2026-01-01T00:00:00.123Z","sequence":3,"data":{}}`, true},
		{"negative sequence", `{"type":"x.y","timestamp":"2026-01-01T00:00:00Z","sequence":-1,"data":{}}`, false},
		{"no type", `{"timestamp":"2026-01-01T00:00:00Z","data":{}}`, false},
		{"bad timestamp", `{"type":"key.reset","timestamp":"yesterday","data":{}}`, false},
		{"no data", `{"type":"key.reset","timestamp":"2026-01-01T00:00:00Z"}`, false},
		{"array data", `{"type":"key.reset","timestamp":"2026-01-01T00:00:00Z","data":[]}`, false},
		{"trailing data", `{"type":"key.reset","timestamp":"2026-01-01T00:00:00Z","data":{}} {}`, false},
		{"not json", `type=key.reset`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWebhookBody([]byte(tt.body))
			if tt.ok != (err == nil) {
				t.Fatalf("ParseWebhookBody = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
