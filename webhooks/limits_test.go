package webhooks

import (
	"errors"
	"testing"

	"keyd/store"
)

func TestSpendLimitReachedIsDeliveredOncePerPeriod(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, answer(200, nil, ""))
	hook, _ := e.endpoint(rc.URL, "key.*")
	alias, err := e.db.CreateAlias(e.ctx(), store.SystemActor, e.account.Account.ID, store.NewAlias{Name: "client",
		SpendLimit: &store.SpendLimit{Limit: 3, Period: store.PeriodDay}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e.db.LookupKey(store.HashKey(alias.Secret))
	if _, err := e.db.Spend(e.ctx(), &v, 3, ""); err != nil {
		t.Fatal(err)
	}
	for range 3 { // refused: the key's limit is spent; no second event
		if _, err := e.db.Spend(e.ctx(), &v, 1, ""); !errors.Is(err, store.ErrKeySpendLimit) {
			t.Fatalf("charge over the limit: %v", err)
		}
	}
	e.sweep()
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d messages received, want one key.spend_limit_reached", len(reqs))
	}
	typ, data := payloadOf(t, reqs[0].body)
	limit, _ := data["spend_limit"].(map[string]any)
	if typ != store.EventKeySpendLimitReached || data["key_id"] != alias.Key.ID || data["hint"] != alias.Key.Hint ||
		limit["limit"] != 3.0 || limit["spent"] != 3.0 || limit["resets_at"] != "2026-04-02T00:00:00Z" {
		t.Fatalf("received %s %v", typ, data)
	}
	if n := len(e.messages(hook.ID)); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

func TestSiteEventsAreDelivered(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, answer(200, nil, ""))
	e.endpoint(rc.URL, "site.*")
	two := 2
	alias, err := e.db.CreateAlias(e.ctx(), store.SystemActor, e.account.Account.ID, store.NewAlias{Name: "licensed", MaxSites: &two})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e.db.LookupKey(store.HashKey(alias.Secret))
	if _, err := e.db.UseSite(e.ctx(), v, "https://shop.example/", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.db.DeactivateSite(e.ctx(), &v, "https://shop.example/"); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d messages received, want site.activated and site.released", len(reqs))
	}
	for i, want := range []string{store.EventSiteActivated, store.EventSiteReleased} {
		typ, data := payloadOf(t, reqs[i].body)
		sites, _ := data["sites"].(map[string]any)
		if typ != want || data["key_id"] != alias.Key.ID || data["site"] != "shop.example" || sites["limit"] != 2.0 || sites["used"] != float64(1-i) {
			t.Errorf("message %d: %s %v, want %s", i, typ, data, want)
		}
	}
	if _, data := payloadOf(t, reqs[1].body); data["reason"] != store.ReleasedBySite {
		t.Errorf("site.released reason %v, want %s", data["reason"], store.ReleasedBySite)
	}
}
