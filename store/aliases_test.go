package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"keyd/store/storetest"
)

// stepClock is a clock that tests move by hand.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openStoreAt opens a store on a fresh database with a clock at a fixed
// time.
func openStoreAt(t *testing.T) (*DB, *stepClock, string) {
	t.Helper()
	return openStoreAtPath(t, storetest.DSN(t))
}

// openStoreAtPath is openStoreAt on the database at path.
func openStoreAtPath(t *testing.T, path string) (*DB, *stepClock, string) {
	t.Helper()
	clock := &stepClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	db, err := Open(context.Background(), path, testOptions(path, []Option{WithClock(clock.Now)})...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, clock, path
}

func createTestAccount(t *testing.T, db *DB, plan string) Created {
	t.Helper()
	c, err := db.CreateAccount(context.Background(), SystemActor, NewAccount{Name: "Acme", Email: "o@acme.test", Plan: plan, Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func countEvents(t *testing.T, db *DB, typ, target string) int {
	t.Helper()
	var n int
	if err := db.r.QueryRow(`SELECT count(*) FROM events WHERE type = ? AND target_id = ?`, typ, target).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func keyCheckAt(t *testing.T, db *DB, secret string, now time.Time) error {
	t.Helper()
	v, ok := db.LookupKey(HashKey(secret))
	if !ok {
		t.Fatalf("key ...%s not in the index", KeyHint(secret))
	}
	return v.Check(now)
}

func TestAliasExpiresToTheSecondAndJobEmitsOnce(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	expires := clock.Now().Add(48 * time.Hour)
	alias, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client", ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}

	// Before the lead window: nothing to do.
	for i := 0; i < 2; i++ {
		if exp, soon, err := db.ExpireAliases(ctx, 24*time.Hour); err != nil || exp+soon != 0 {
			t.Fatalf("run %d: expired %d, expiring %d, err %v; want nothing", i, exp, soon, err)
		}
	}
	// Inside the lead window: alias.expiring once, however often the job runs.
	clock.Advance(25 * time.Hour)
	for i := 0; i < 3; i++ {
		if _, _, err := db.ExpireAliases(ctx, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := countEvents(t, db, EventAliasExpiring, alias.Key.ID); n != 1 {
		t.Fatalf("alias.expiring emitted %d times, want 1", n)
	}

	// One second before expiry it validates; at the second it does not, with
	// no job run in between.
	clock.Advance(23*time.Hour - time.Second)
	if err := keyCheckAt(t, db, alias.Secret, clock.Now()); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	clock.Advance(time.Second)
	if err := keyCheckAt(t, db, alias.Secret, clock.Now()); !errors.Is(err, ErrKeyExpired) {
		t.Fatalf("at expiry: %v, want ErrKeyExpired", err)
	}
	if n := countEvents(t, db, EventAliasExpired, alias.Key.ID); n != 0 {
		t.Fatalf("alias.expired emitted before the job ran")
	}
	for i := 0; i < 3; i++ {
		if _, _, err := db.ExpireAliases(ctx, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := countEvents(t, db, EventAliasExpired, alias.Key.ID); n != 1 {
		t.Fatalf("alias.expired emitted %d times, want 1", n)
	}
	k, err := db.GetKey(ctx, acc.Account.ID, alias.Key.ID)
	if err != nil || k.Status != KeyExpired {
		t.Fatalf("stored status %q (%v), want expired", k.Status, err)
	}

	// A new expiry revives it, and a later expiry is warned about again.
	later := clock.Now().Add(10 * time.Hour)
	if _, err := db.UpdateAlias(ctx, SystemActor, acc.Account.ID, alias.Key.ID, AliasPatch{SetExpiry: true, ExpiresAt: &later}); err != nil {
		t.Fatal(err)
	}
	if err := keyCheckAt(t, db, alias.Secret, clock.Now()); err != nil {
		t.Fatalf("after a new expiry: %v", err)
	}
	if _, _, err := db.ExpireAliases(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(t, db, EventAliasExpiring, alias.Key.ID); n != 2 {
		t.Fatalf("alias.expiring for the new expiry: %d events in all, want 2", n)
	}
}

func TestGraceEndRevokesOnce(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "free")
	reset, err := db.ResetPrimaryKey(ctx, SystemActor, acc.Account.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour - time.Second)
	if err := keyCheckAt(t, db, acc.Secret, clock.Now()); err != nil {
		t.Fatalf("old key inside grace: %v", err)
	}
	if n, err := db.RevokeEndedGrace(ctx); err != nil || n != 0 {
		t.Fatalf("revoked %d (%v) before grace ended", n, err)
	}
	clock.Advance(time.Second)
	if err := keyCheckAt(t, db, acc.Secret, clock.Now()); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("old key after grace: %v, want ErrKeyRevoked", err)
	}
	if err := keyCheckAt(t, db, reset.Secret, clock.Now()); err != nil {
		t.Fatalf("new key: %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := db.RevokeEndedGrace(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := countEvents(t, db, EventKeyRevoked, acc.Key.ID); n != 1 {
		t.Fatalf("key.revoked emitted %d times, want 1", n)
	}
}

func TestAliasLimitHoldsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		created, limits int
	)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "alias " + string(rune('a'+i))})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, ErrAliasLimit):
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
}

func TestAliasSlotsFreedAndReused(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	id := acc.Account.ID
	limit := 2
	if _, err := db.UpdateAccount(ctx, SystemActor, id, AccountPatch{SetAliasLimit: true, AliasLimitOverride: &limit}); err != nil {
		t.Fatal(err)
	}
	soon := clock.Now().Add(time.Minute)
	a, err := db.CreateAlias(ctx, SystemActor, id, NewAlias{Name: "a", ExpiresAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateAlias(ctx, SystemActor, id, NewAlias{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlias(ctx, SystemActor, id, NewAlias{Name: "c"}); !errors.Is(err, ErrAliasLimit) {
		t.Fatalf("third alias over an override of 2: %v", err)
	}
	// Deactivating frees a slot; reactivating needs one.
	if _, err := db.SetAliasStatus(ctx, SystemActor, id, b.Key.ID, false); err != nil {
		t.Fatal(err)
	}
	c, err := db.CreateAlias(ctx, SystemActor, id, NewAlias{Name: "c"})
	if err != nil {
		t.Fatalf("after deactivation: %v", err)
	}
	if _, err := db.SetAliasStatus(ctx, SystemActor, id, b.Key.ID, true); !errors.Is(err, ErrAliasLimit) {
		t.Fatalf("reactivation over the limit: %v", err)
	}
	// Expiry frees a slot even before a job has run.
	clock.Advance(time.Minute)
	if _, err := db.SetAliasStatus(ctx, SystemActor, id, b.Key.ID, true); err != nil {
		t.Fatalf("reactivation after another alias expired: %v", err)
	}
	// Reviving the expired alias needs a slot again.
	later := clock.Now().Add(time.Hour)
	if _, err := db.UpdateAlias(ctx, SystemActor, id, a.Key.ID, AliasPatch{SetExpiry: true, ExpiresAt: &later}); !errors.Is(err, ErrAliasLimit) {
		t.Fatalf("revival over the limit: %v", err)
	}
	// Deleting frees the slot and the name, and the key is dead for ever.
	if err := db.DeleteAlias(ctx, SystemActor, id, c.Key.ID); err != nil {
		t.Fatal(err)
	}
	if err := keyCheckAt(t, db, c.Secret, clock.Now()); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("deleted alias: %v, want ErrKeyRevoked", err)
	}
	if _, err := db.SetAliasStatus(ctx, SystemActor, id, c.Key.ID, true); !errors.Is(err, ErrAliasGone) {
		t.Fatalf("reactivating a deleted alias: %v", err)
	}
	if _, err := db.UpdateAlias(ctx, SystemActor, id, a.Key.ID, AliasPatch{SetExpiry: true, ExpiresAt: &later}); err != nil {
		t.Fatalf("revival with a free slot: %v", err)
	}
	if _, err := db.CreateAlias(ctx, SystemActor, id, NewAlias{Name: "C"}); !errors.Is(err, ErrAliasLimit) {
		t.Fatalf("want the limit (names of deleted aliases are free again): %v", err)
	}
}

func TestAliasNamesUniqueIgnoringCase(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "mega")
	other := createTestAccount(t, db, "mega")
	if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "Client Site"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client site"}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("same name in another case: %v, want ErrNameTaken", err)
	}
	if _, err := db.CreateAlias(ctx, SystemActor, other.Account.ID, NewAlias{Name: "client site"}); err != nil {
		t.Fatalf("same name in another account: %v", err)
	}
	b, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	taken := "CLIENT SITE"
	if _, err := db.UpdateAlias(ctx, SystemActor, acc.Account.ID, b.Key.ID, AliasPatch{Name: &taken}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("rename to a taken name: %v", err)
	}
}

func TestAliasScopesStayWithinPrimary(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "mega")
	id := acc.Account.ID
	if _, err := db.UpdatePrimaryKey(ctx, SystemActor, id, acc.Key.ID, nil, []string{"*", "!billing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlias(ctx, SystemActor, id, NewAlias{Name: "a", Scopes: []string{"*"}}); !errors.Is(err, ErrScopeExceeds) {
		t.Fatalf("alias with * under a primary denying billing: %v", err)
	}
	a, err := db.CreateAlias(ctx, SystemActor, id, NewAlias{Name: "a", Scopes: []string{"optimize", "stats"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateAlias(ctx, SystemActor, id, a.Key.ID, AliasPatch{Scopes: []string{"billing"}}); !errors.Is(err, ErrScopeExceeds) {
		t.Fatalf("patching in a denied scope: %v", err)
	}
	// Narrowing the primary narrows the alias at once.
	v, _ := db.LookupKey(HashKey(a.Secret))
	if !v.AllowsScope("stats") {
		t.Fatal("alias should allow stats before the primary is narrowed")
	}
	if _, err := db.UpdatePrimaryKey(ctx, SystemActor, id, acc.Key.ID, nil, []string{"optimize"}); err != nil {
		t.Fatal(err)
	}
	v, _ = db.LookupKey(HashKey(a.Secret))
	if v.AllowsScope("stats") || !v.AllowsScope("optimize") {
		t.Fatalf("effective scopes after narrowing: stats %v optimize %v", v.AllowsScope("stats"), v.AllowsScope("optimize"))
	}
	if err := v.Check(clock.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestAliasEventsNeverCarryKeys(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	a, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetAliasStatus(ctx, SystemActor, acc.Account.ID, a.Key.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAlias(ctx, SystemActor, acc.Account.ID, a.Key.ID); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{EventAliasCreated, EventAliasDeactivated, EventAliasDeleted} {
		if n := countEvents(t, db, typ, a.Key.ID); n != 1 {
			t.Errorf("%s: %d events, want 1", typ, n)
		}
	}
	rows, err := db.r.Query(`SELECT data FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var data string
		rows.Scan(&data)
		for _, secret := range []string{a.Secret, acc.Secret} {
			hash := HashKey(secret)
			if contains(data, secret) || contains(data, string(hash[:])) || contains(data, hexString(hash[:])) {
				t.Fatalf("event data holds a key or its hash: %s", data)
			}
		}
	}
}

func TestOverlappingSweepsEmitEachEventOnce(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "mega")
	var ids []string
	for i := 0; i < 10; i++ {
		at := clock.Now().Add(time.Duration(i+1) * time.Minute)
		a, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "alias " + string(rune('a'+i)), ExpiresAt: &at})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.Key.ID)
	}
	clock.Advance(time.Hour)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := db.ExpireAliases(ctx, 24*time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if n := countEvents(t, db, EventAliasExpired, id); n != 1 {
			t.Errorf("alias %s: alias.expired %d times, want 1", id, n)
		}
	}
}

func TestSitesAreRewrittenHourlyOrWhenTheReportChanges(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	v, _ := db.LookupKey(HashKey(acc.Secret))
	lastSeen := func() (int64, string) {
		var last int64
		var version string
		if err := db.r.QueryRow(`SELECT last_seen, plugin_version FROM key_sites WHERE key_id = ?`, acc.Key.ID).Scan(&last, &version); err != nil {
			t.Fatal(err)
		}
		return last, version
	}
	seen := func(version string) {
		db.RecordValidation(v, true, SiteReport{Site: "https://shop.example/", Plugin: "shop", PluginVersion: version}, clock.Now())
		if err := db.FlushActivity(ctx); err != nil {
			t.Fatal(err)
		}
	}
	seen("1.0")
	first, _ := lastSeen()
	clock.Advance(10 * time.Minute)
	seen("1.0")
	if last, _ := lastSeen(); last != first {
		t.Fatalf("the same report 10 minutes later was rewritten: last_seen %d, want %d", last, first)
	}
	seen("1.1") // a new plugin version is written at once
	if last, version := lastSeen(); version != "1.1" || last != clock.Now().Unix() {
		t.Fatalf("new version: %q at %d, want 1.1 at %d", version, last, clock.Now().Unix())
	}
	clock.Advance(61 * time.Minute)
	seen("1.1")
	if last, _ := lastSeen(); last != clock.Now().Unix() {
		t.Fatalf("an hour later last_seen is %d, want %d", last, clock.Now().Unix())
	}
}
