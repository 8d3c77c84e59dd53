package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func newSub(i int) NewAccount {
	return NewAccount{Name: fmt.Sprintf("client %d", i), Email: fmt.Sprintf("c%d@client.test", i)}
}

func TestSubaccountLimitHoldsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	parent := createTestAccount(t, db, "pro") // 5 subaccounts
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		created, limits int
	)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := db.CreateSubaccount(ctx, SystemActor, parent.Account.ID, newSub(i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, ErrSubaccountLimit):
				limits++
			default:
				t.Errorf("create %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if created != 5 || limits != 15 {
		t.Fatalf("created %d, limit reached %d; want 5 and 15", created, limits)
	}
	if u, err := db.SubaccountSlots(ctx, parent.Account.ID); err != nil || u != (SubaccountUsage{Used: 5, Limit: 5}) {
		t.Fatalf("SubaccountSlots = %+v, %v; want 5 of 5", u, err)
	}
}

func TestSubaccountLimitPerPlanAndAccount(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	op := OperatorActor("127.0.0.1")

	// free allows none; enterprise none until the operator sets the account's limit.
	for _, plan := range []string{"free", "enterprise"} {
		acc := createTestAccount(t, db, plan)
		if _, err := db.CreateSubaccount(ctx, SystemActor, acc.Account.ID, newSub(0)); !errors.Is(err, ErrSubaccountLimit) {
			t.Errorf("%s: first subaccount error = %v, want ErrSubaccountLimit", plan, err)
		}
	}
	ent := createTestAccount(t, db, "enterprise")
	if _, err := db.UpdateAccount(ctx, op, ent.Account.ID, AccountPatch{SetSubaccountLimit: true, SubaccountLimitOverride: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	var subs []Created
	for i := 0; i < 2; i++ {
		sub, err := db.CreateSubaccount(ctx, SystemActor, ent.Account.ID, newSub(i))
		if err != nil {
			t.Fatalf("subaccount %d under the override: %v", i, err)
		}
		subs = append(subs, sub)
	}
	// A suspended subaccount keeps its keys, so it keeps its slot.
	if _, err := db.UpdateAccount(ctx, op, subs[0].Account.ID, AccountPatch{Status: ptr(AccountSuspended)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSubaccount(ctx, SystemActor, ent.Account.ID, newSub(2)); !errors.Is(err, ErrSubaccountLimit) {
		t.Errorf("third subaccount with one suspended: %v, want ErrSubaccountLimit", err)
	}
	// A subaccount may have none, whatever its plan says.
	if u, err := db.SubaccountSlots(ctx, subs[1].Account.ID); err != nil || u != (SubaccountUsage{}) {
		t.Errorf("a subaccount's SubaccountSlots = %+v, %v; want 0 of 0", u, err)
	}
	// Raising the plan's limit counts at once; clearing the override falls back to the plan.
	if _, err := db.UpdatePlan(ctx, op, "enterprise", PlanChange{SubaccountLimit: PlanLimit{Set: true, Value: ptr(3)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateAccount(ctx, op, ent.Account.ID, AccountPatch{SetSubaccountLimit: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSubaccount(ctx, SystemActor, ent.Account.ID, newSub(3)); err != nil {
		t.Errorf("third subaccount under the plan's new limit 3: %v", err)
	}
	if u, _ := db.SubaccountSlots(ctx, ent.Account.ID); u != (SubaccountUsage{Used: 3, Limit: 3}) {
		t.Errorf("SubaccountSlots = %+v, want 3 of 3", u)
	}
	var inv *InvalidError
	if _, err := db.UpdateAccount(ctx, op, ent.Account.ID, AccountPatch{SetSubaccountLimit: true, SubaccountLimitOverride: ptr(-1)}); !errors.As(err, &inv) || inv.Fields["subaccount_limit"] == "" {
		t.Errorf("negative override: %v", err)
	}
}

func TestUpdatePlanKeepsWhatItIsNotGiven(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	op := OperatorActor("127.0.0.1")
	p, err := db.UpdatePlan(ctx, op, "pro", PlanChange{AliasLimit: PlanLimit{Set: true, Value: ptr(9)}})
	if err != nil {
		t.Fatal(err)
	}
	if !sameInt(p.AliasLimit, ptr(9)) || !sameInt(p.SubaccountLimit, ptr(5)) || !sameInt(p.RateLimitPerMinute, ptr(600)) {
		t.Errorf("pro after changing the alias limit = %+v", p)
	}
	if p, err = db.UpdatePlan(ctx, op, "pro", PlanChange{RateLimitPerMinute: PlanLimit{Set: true}}); err != nil || p.RateLimitPerMinute != nil {
		t.Errorf("explicit unlimited: %+v, %v", p, err)
	}
	if _, err := db.UpdatePlan(ctx, op, "porr", PlanChange{AliasLimit: PlanLimit{Set: true, Value: ptr(1)}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown plan: %v, want ErrNotFound", err)
	}
	if _, err := db.GetPlan(ctx, "porr"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdatePlan created a plan: %v", err)
	}
	var inv *InvalidError
	if _, err := db.UpdatePlan(ctx, op, "pro", PlanChange{SubaccountLimit: PlanLimit{Set: true, Value: ptr(-1)}}); !errors.As(err, &inv) || inv.Fields["subaccount_limit"] == "" {
		t.Errorf("negative subaccount limit: %v", err)
	}
}
