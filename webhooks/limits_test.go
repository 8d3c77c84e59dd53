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
