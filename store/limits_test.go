package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"keyd/store/storetest"
)

func TestSpendLimitHoldsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	acc := mustCreate(t, db, "acme", "pro", 1000)
	alias, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client",
		SpendLimit: &SpendLimit{Limit: 500, Period: PeriodDay}})
	if err != nil {
		t.Fatal(err)
	}
	v := mustLookup(t, db, alias.Secret)
	const charges = 2000
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		charged, refused int
	)
	for range charges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.Spend(ctx, &v, 1, "")
			mu.Lock()
			defer mu.Unlock()
			var le *KeySpendLimitError
			switch {
			case err == nil:
				charged++
			case errors.As(err, &le):
				refused++
				if le.Allowance.Spent != 500 || le.Allowance.Remaining != 0 || le.Allowance.ResetsAt == nil {
					t.Errorf("refusal says %+v, want 500 spent, 0 remaining and a reset time", le.Allowance)
				}
			default:
				t.Errorf("Spend: %v", err)
			}
		}()
	}
	wg.Wait()
	if charged != 500 || refused != charges-500 {
		t.Errorf("%d charged, %d refused; want 500 and %d", charged, refused, charges-500)
	}
	if a, _ := db.GetAccount(ctx, acc.Account.ID); a.Credits != 500 {
		t.Errorf("pool %d, want 500", a.Credits)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM events WHERE type = ?`, EventKeySpendLimitReached); n != 1 {
		t.Errorf("%d key.spend_limit_reached events, want 1", n)
	}
	after := mustLookup(t, db, alias.Secret)
	if a, ok := after.Allowance(time.Now()); !ok || a.Spent != 500 || a.Remaining != 0 {
		t.Errorf("index allowance %+v, %v; want 500 spent", a, ok)
	}
}

func TestSpendLimitPeriodsAndReplays(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC))
	db := mustOpenDB(t, WithClock(clock.Now))
	acc := mustCreate(t, db, "acme", "pro", 1000)
	alias, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client",
		SpendLimit: &SpendLimit{Limit: 10, Period: PeriodMonth}})
	if err != nil {
		t.Fatal(err)
	}
	v := mustLookup(t, db, alias.Secret)
	first, err := db.Spend(ctx, &v, 8, "order-1")
	if err != nil {
		t.Fatal(err)
	}
	feb := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if a := first.Allowance; a == nil || a.Spent != 8 || a.Remaining != 2 || !a.ResetsAt.Equal(feb) {
		t.Fatalf("allowance %+v, want 8 spent, 2 remaining, resets %v", a, feb)
	}
	_, err = db.Spend(ctx, &v, 3, "order-2")
	var le *KeySpendLimitError
	if !errors.As(err, &le) || le.Allowance.Spent != 8 || le.Allowance.Limit != 10 {
		t.Fatalf("3 more units: %v, want the key's limit (8 of 10 spent)", err)
	}
	if a, _ := db.GetAccount(ctx, acc.Account.ID); a.Credits != 992 {
		t.Errorf("pool %d after a refused charge, want 992", a.Credits)
	}
	// A replay keeps its first answer, over the limit or not.
	again, err := db.Spend(ctx, &v, 8, "order-1")
	if err != nil || !again.Replayed || again.Credits != 992 || again.Allowance == nil || again.Allowance.Spent != 8 {
		t.Fatalf("replay: %+v, %v; want the first answer", again, err)
	}
	// A new month counts afresh, and the key tells again when it is full.
	clock.Set(feb.Add(time.Hour))
	if _, err := db.Spend(ctx, &v, 10, "order-3"); err != nil {
		t.Fatalf("a new month: %v", err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM events WHERE type = ?`, EventKeySpendLimitReached); n != 2 {
		t.Errorf("%d key.spend_limit_reached events, want one per month (2)", n)
	}
	// Removing the limit lets the key spend freely.
	k, err := db.UpdateAlias(ctx, SystemActor, acc.Account.ID, alias.Key.ID, AliasPatch{LimitsPatch: LimitsPatch{SetSpendLimit: true}})
	if err != nil || k.SpendLimit != nil {
		t.Fatalf("remove the limit: %+v, %v", k.SpendLimit, err)
	}
	if c, err := db.Spend(ctx, &v, 50, ""); err != nil || c.Allowance != nil {
		t.Fatalf("without a limit: %+v, %v", c, err)
	}
}

func TestSpendLimitOnThePrimaryKeyAndBadInput(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	db := mustOpenDBAt(t, path)
	acc := mustCreate(t, db, "acme", "pro", 100)
	for _, bad := range []SpendLimit{{Limit: 0, Period: PeriodDay}, {Limit: 5, Period: "week"}} {
		_, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "x", SpendLimit: &bad})
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Fields["spend_limit"] == "" {
			t.Errorf("%+v: %v, want an error naming spend_limit", bad, err)
		}
	}
	k, err := db.PatchPrimaryKey(ctx, SystemActor, acc.Account.ID, acc.Key.ID, PrimaryPatch{
		LimitsPatch: LimitsPatch{SetSpendLimit: true, SpendLimit: &SpendLimit{Limit: 5, Period: PeriodTotal}}})
	if err != nil || k.SpendLimit == nil || k.SpendLimit.Limit != 5 {
		t.Fatalf("primary limit: %+v, %v", k.SpendLimit, err)
	}
	v := mustLookup(t, db, acc.Secret)
	if c, err := db.Spend(ctx, &v, 5, ""); err != nil || c.Allowance.ResetsAt != nil || c.Allowance.Remaining != 0 {
		t.Fatalf("spend 5 of 5 in total: %+v, %v", c, err)
	}
	if _, err := db.Spend(ctx, &v, 1, ""); !errors.Is(err, ErrKeySpendLimit) {
		t.Fatalf("a 6th unit: %v, want ErrKeySpendLimit", err)
	}
	// The key list shows what was spent.
	keys, err := db.ListKeys(ctx, acc.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a := keys[0].AllowanceAt(time.Now()); a == nil || a.Spent != 5 {
		t.Errorf("listed allowance %+v, want 5 spent", a)
	}
	// Loaded again from the database, the index knows the limit and the count.
	db.Close()
	db = mustOpenDBAt(t, path)
	v = mustLookup(t, db, acc.Secret)
	if a, ok := v.Allowance(time.Now()); !ok || a.Spent != 5 || a.Limit != 5 {
		t.Errorf("reloaded allowance %+v, %v; want 5 of 5 spent", a, ok)
	}
}
