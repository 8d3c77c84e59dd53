package store

import (
	"context"
	"errors"
	"io/fs"
	"strconv"
	"testing"
	"time"

	"keyd/store/sqlite"
	"keyd/store/storetest"
)

func TestMigrationsAppliedOnceAndRecorded(t *testing.T) {
	ctx := context.Background()
	names, err := fs.Glob(sqlite.Engine{}.Migrations(), "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded migrations: %v", err)
	}
	clock := newFakeClock(t0)
	path := storetest.DSN(t)
	db := mustOpenDBAt(t, path, WithClock(clock.Now))

	if n := queryInt(t, db, `SELECT count(*) FROM schema_migrations`); n != int64(len(names)) {
		t.Fatalf("schema_migrations holds %d rows, want one per migration (%d)", n, len(names))
	}
	var name string
	var appliedAt int64
	if err := db.r.QueryRow(`SELECT name, applied_at FROM schema_migrations WHERE version = 1`).Scan(&name, &appliedAt); err != nil {
		t.Fatal(err)
	}
	if name != "0001_init.sql" || appliedAt != t0.Unix() {
		t.Errorf("migration 1 recorded as %q at %d, want 0001_init.sql at %d", name, appliedAt, t0.Unix())
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil || v != LatestSchemaVersion() {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, LatestSchemaVersion())
	}
	if n, err := db.Migrate(ctx); err != nil || n != 0 {
		t.Errorf("Migrate on a migrated database applied %d, %v; want 0", n, err)
	}
	mustCreate(t, db, "kept", "free", 5)
	db.Close()

	// Reopening applies nothing and keeps both the record and the data.
	clock.Add(time.Hour)
	db = mustOpenDBAt(t, path, WithClock(clock.Now))
	if n, err := db.Migrate(ctx); err != nil || n != 0 {
		t.Errorf("Migrate after reopening applied %d, %v; want 0", n, err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM schema_migrations`); n != int64(len(names)) {
		t.Errorf("after reopening schema_migrations holds %d rows, want %d", n, len(names))
	}
	if n := queryInt(t, db, `SELECT applied_at FROM schema_migrations WHERE version = 1`); n != t0.Unix() {
		t.Errorf("reopening rewrote applied_at to %d, want %d", n, t0.Unix())
	}
	if n := queryInt(t, db, `SELECT count(*) FROM accounts`); n != 1 {
		t.Errorf("after reopening %d accounts, want 1", n)
	}
}

func TestSeededPlans(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	plans, err := db.ListPlans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name        string
		alias, rate *int
	}{
		{"free", ptr(0), ptr(60)},
		{"pro", ptr(5), ptr(600)},
		{"mega", ptr(25), ptr(3000)},
		{"enterprise", nil, nil},
	}
	if len(plans) != len(want) {
		t.Fatalf("ListPlans = %d plans, want %d: %+v", len(plans), len(want), plans)
	}
	for i, w := range want {
		p := plans[i]
		if p.Name != w.name || !sameInt(p.AliasLimit, w.alias) || !sameInt(p.RateLimitPerMinute, w.rate) {
			t.Errorf("plan %d = %s alias %s rate %s; want %s alias %s rate %s", i,
				p.Name, showInt(p.AliasLimit), showInt(p.RateLimitPerMinute), w.name, showInt(w.alias), showInt(w.rate))
		}
		got, err := db.GetPlan(ctx, w.name)
		if err != nil || got.Name != w.name || !sameInt(got.AliasLimit, w.alias) {
			t.Errorf("GetPlan(%s) = %+v, %v", w.name, got, err)
		}
	}
	if _, err := db.GetPlan(ctx, "platinum"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPlan(unknown) error = %v, want ErrNotFound", err)
	}
}

func TestPutPlan(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	op := OperatorActor("127.0.0.1")

	p, err := db.PutPlan(ctx, op, Plan{Name: "gold", AliasLimit: ptr(10), RateLimitPerMinute: nil})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "gold" || !sameInt(p.AliasLimit, ptr(10)) || p.RateLimitPerMinute != nil || !p.UpdatedAt.Equal(t0) {
		t.Errorf("PutPlan(new) = %+v", p)
	}
	clock.Add(time.Minute)
	if p, err = db.PutPlan(ctx, op, Plan{Name: "pro", AliasLimit: ptr(7), RateLimitPerMinute: ptr(700)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetPlan(ctx, "pro"); !sameInt(got.AliasLimit, ptr(7)) || !sameInt(got.RateLimitPerMinute, ptr(700)) || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("after replacing pro: %+v", got)
	}
	plans, _ := db.ListPlans(ctx)
	if len(plans) != 5 {
		t.Errorf("after adding gold %d plans, want 5", len(plans))
	}

	for _, bad := range []Plan{
		{Name: "x", AliasLimit: ptr(-1)},
		{Name: "x", AliasLimit: ptr(1_000_001)},
		{Name: "x", RateLimitPerMinute: ptr(0)},
		{Name: "x", RateLimitPerMinute: ptr(-5)},
	} {
		var inv *InvalidError
		if _, err := db.PutPlan(ctx, op, bad); !errors.As(err, &inv) || len(inv.Fields) != 1 {
			t.Errorf("PutPlan(%s alias %s rate %s) error = %v, want an InvalidError naming the field",
				bad.Name, showInt(bad.AliasLimit), showInt(bad.RateLimitPerMinute), err)
		}
	}
	if _, err := db.GetPlan(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused plan was stored: %v", err)
	}
}

func TestAccountCreateGetUpdate(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	op := OperatorActor("203.0.113.9")

	c, err := db.CreateAccount(ctx, op, NewAccount{Name: "Acme", Email: "ops@acme.test", Plan: "pro", Credits: 1200})
	if err != nil {
		t.Fatal(err)
	}
	a := c.Account
	if len(a.ID) != 20 || a.ID[:4] != "acc_" || a.Name != "Acme" || a.Email != "ops@acme.test" || a.Plan != "pro" ||
		a.Status != AccountActive || a.Credits != 1200 || a.ParentID != nil || a.AliasLimitOverride != nil ||
		!a.CreatedAt.Equal(t0) || !a.UpdatedAt.Equal(t0) {
		t.Errorf("created account = %+v", a)
	}
	k := c.Key
	if k.ID[:4] != "key_" || k.AccountID != a.ID || k.Type != KeyTypePrimary || k.Status != KeyActive ||
		k.Hint != KeyHint(c.Secret) || !WellFormedKey(c.Secret) || len(k.Scopes) != 1 || k.Scopes[0] != "*" ||
		k.ExpiresAt != nil || k.ValidUntil != nil || k.LastUsedAt != nil || !k.CreatedAt.Equal(t0) {
		t.Errorf("created primary key = %+v", k)
	}
	got, err := db.GetAccount(ctx, a.ID)
	if err != nil || got.ID != a.ID || got.Credits != 1200 || got.Plan != "pro" {
		t.Errorf("GetAccount = %+v, %v", got, err)
	}
	if _, err := db.GetAccount(ctx, "acc_0000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetAccount(missing) error = %v, want ErrNotFound", err)
	}
	v := mustLookup(t, db, c.Secret)
	if v.KeyID != k.ID || v.AccountID != a.ID || v.Plan != "pro" || v.Credits != 1200 || v.Check(clock.Now()) != nil {
		t.Errorf("index view of the new key = %+v", v)
	}

	// Refused input changes nothing.
	var inv *InvalidError
	if _, err := db.CreateAccount(ctx, op, NewAccount{Name: "x", Email: "x@x.test", Plan: "platinum"}); !errors.As(err, &inv) || inv.Fields["plan"] == "" {
		t.Errorf("CreateAccount(unknown plan) error = %v, want InvalidError on plan", err)
	}
	if _, err := db.CreateAccount(ctx, op, NewAccount{Name: "x", Email: "x@x.test", Plan: "free", Credits: -1}); !errors.As(err, &inv) || inv.Fields["credits"] == "" {
		t.Errorf("CreateAccount(negative credits) error = %v, want InvalidError on credits", err)
	}
	if _, err := db.CreateAccount(ctx, op, NewAccount{Name: "x", Email: "x@x.test", Plan: "free", Credits: MaxCredits + 1}); !errors.As(err, &inv) {
		t.Errorf("CreateAccount(too many credits) error = %v, want InvalidError", err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM accounts`); n != 1 {
		t.Errorf("refused creations left %d accounts, want 1", n)
	}

	// Plan and status.
	clock.Add(time.Minute)
	up, err := db.UpdateAccount(ctx, op, a.ID, AccountPatch{Plan: ptr("mega"), Status: ptr(AccountSuspended)})
	if err != nil {
		t.Fatal(err)
	}
	if up.Plan != "mega" || up.Status != AccountSuspended || !up.UpdatedAt.Equal(t0.Add(time.Minute)) || !up.CreatedAt.Equal(t0) {
		t.Errorf("after update: %+v", up)
	}
	v = mustLookup(t, db, c.Secret)
	if v.Plan != "mega" || v.AccountStatus != AccountSuspended || !errors.Is(v.Check(clock.Now()), ErrAccountSuspended) {
		t.Errorf("index after suspending: plan %s status %s check %v", v.Plan, v.AccountStatus, v.Check(clock.Now()))
	}
	slots, err := db.AliasSlots(ctx, a.ID)
	if err != nil || slots != (AliasUsage{Used: 0, Limit: 25}) {
		t.Errorf("AliasSlots on mega = %+v, %v; want limit 25", slots, err)
	}
	if up, err = db.UpdateAccount(ctx, op, a.ID, AccountPatch{Status: ptr(AccountActive)}); err != nil || up.Status != AccountActive || up.Plan != "mega" {
		t.Errorf("reactivating: %+v, %v", up, err)
	}
	if v = mustLookup(t, db, c.Secret); v.Check(clock.Now()) != nil {
		t.Errorf("reactivated account's key: %v", v.Check(clock.Now()))
	}

	// The alias-limit override is set, then cleared.
	if up, err = db.UpdateAccount(ctx, op, a.ID, AccountPatch{SetAliasLimit: true, AliasLimitOverride: ptr(40)}); err != nil || !sameInt(up.AliasLimitOverride, ptr(40)) {
		t.Errorf("setting the override: %+v, %v", up, err)
	}
	if slots, _ = db.AliasSlots(ctx, a.ID); slots.Limit != 40 {
		t.Errorf("AliasSlots with override 40 = %+v", slots)
	}
	// A patch that leaves the override alone keeps it.
	if up, err = db.UpdateAccount(ctx, op, a.ID, AccountPatch{Plan: ptr("enterprise")}); err != nil || !sameInt(up.AliasLimitOverride, ptr(40)) {
		t.Errorf("changing the plan lost the override: %+v, %v", up, err)
	}
	if up, err = db.UpdateAccount(ctx, op, a.ID, AccountPatch{SetAliasLimit: true, AliasLimitOverride: nil}); err != nil || up.AliasLimitOverride != nil {
		t.Errorf("clearing the override: %+v, %v", up, err)
	}
	if slots, _ = db.AliasSlots(ctx, a.ID); slots.Limit != 0 {
		t.Errorf("AliasSlots on enterprise without override = %+v, want limit 0", slots)
	}

	// Refused patches.
	for name, p := range map[string]AccountPatch{
		"unknown plan":     {Plan: ptr("platinum")},
		"unknown status":   {Status: ptr("deleted")},
		"negative limit":   {SetAliasLimit: true, AliasLimitOverride: ptr(-1)},
		"oversized limit":  {SetAliasLimit: true, AliasLimitOverride: ptr(1_000_001)},
		"mixed valid part": {Status: ptr(AccountSuspended), Plan: ptr("platinum")},
	} {
		if _, err := db.UpdateAccount(ctx, op, a.ID, p); !errors.As(err, &inv) {
			t.Errorf("UpdateAccount(%s) error = %v, want InvalidError", name, err)
		}
	}
	if got, _ := db.GetAccount(ctx, a.ID); got.Status != AccountActive || got.Plan != "enterprise" {
		t.Errorf("a refused patch changed the account: %+v", got)
	}
	if _, err := db.UpdateAccount(ctx, op, "acc_0000000000000000", AccountPatch{Status: ptr(AccountSuspended)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateAccount(missing) error = %v, want ErrNotFound", err)
	}
}

func TestAddCredits(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	op := OperatorActor("127.0.0.1")
	c := mustCreate(t, db, "acme", "pro", 100)
	id := c.Account.ID

	a, err := db.AddCredits(ctx, op, id, 50, "purchase")
	if err != nil || a.Credits != 150 {
		t.Fatalf("AddCredits(+50) = %d, %v; want 150", a.Credits, err)
	}
	if v := mustLookup(t, db, c.Secret); v.Credits != 150 {
		t.Errorf("index credits = %d, want 150", v.Credits)
	}
	if _, err := db.AddCredits(ctx, op, id, -151, "correction"); !errors.Is(err, ErrInsufficientCredits) {
		t.Errorf("AddCredits below zero error = %v, want ErrInsufficientCredits", err)
	}
	if a, _ := db.GetAccount(ctx, id); a.Credits != 150 {
		t.Errorf("a refused correction changed the pool to %d", a.Credits)
	}
	if a, err = db.AddCredits(ctx, op, id, -150, "correction"); err != nil || a.Credits != 0 {
		t.Errorf("AddCredits down to exactly zero = %d, %v", a.Credits, err)
	}
	if _, err := db.AddCredits(ctx, op, id, -1, "correction"); !errors.Is(err, ErrInsufficientCredits) {
		t.Errorf("AddCredits(-1) on an empty pool error = %v, want ErrInsufficientCredits", err)
	}
	var inv *InvalidError
	for _, amount := range []int64{0, MaxCredits + 1, -MaxCredits - 1} {
		if _, err := db.AddCredits(ctx, op, id, amount, ""); !errors.As(err, &inv) || inv.Fields["amount"] == "" {
			t.Errorf("AddCredits(%d) error = %v, want InvalidError on amount", amount, err)
		}
	}
	if _, err := db.AddCredits(ctx, op, id, MaxCredits, ""); err != nil {
		t.Errorf("AddCredits(MaxCredits) to an empty pool: %v", err)
	}
	if _, err := db.AddCredits(ctx, op, id, 1, ""); !errors.As(err, &inv) {
		t.Errorf("AddCredits past MaxCredits error = %v, want InvalidError", err)
	}
	if _, err := db.AddCredits(ctx, op, "acc_0000000000000000", 5, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddCredits(missing account) error = %v, want ErrNotFound", err)
	}
	if n := queryInt(t, db, `SELECT min(credits) FROM accounts`); n < 0 {
		t.Errorf("a pool went below zero: %d", n)
	}
}

func sameInt(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func showInt(p *int) string {
	if p == nil {
		return "null"
	}
	return strconv.Itoa(*p)
}

func TestCreditsNeverBelowZeroUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	c := mustCreate(t, db, "acme", "pro", 20)
	const workers = 60
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		go func() {
			_, err := db.AddCredits(ctx, OperatorActor(""), c.Account.ID, -1, "")
			errs <- err
		}()
	}
	ok, refused := 0, 0
	for i := 0; i < workers; i++ {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrInsufficientCredits):
			refused++
		default:
			t.Errorf("AddCredits: %v", err)
		}
	}
	a, err := db.GetAccount(ctx, c.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 20 || refused != workers-20 || a.Credits != 0 {
		t.Errorf("%d charges succeeded, %d refused, pool %d; want 20, %d, 0", ok, refused, a.Credits, workers-20)
	}
	if v := mustLookup(t, db, c.Secret); v.Credits != 0 {
		t.Errorf("index credits %d, want 0", v.Credits)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM events WHERE type = ?`, EventCreditsAdded); n != 20 {
		t.Errorf("%d credits.added events, want 20", n)
	}
}
