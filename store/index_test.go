package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"keyd/store/storetest"
)

// insertAliasRow writes an alias row directly with SQL, as a later alias API
// would, and returns its plaintext. The index does not see it until reopened.
func insertAliasRow(tb testing.TB, db *DB, accountID, name, status string, expiresAt *time.Time, scopes, sites string) (string, string) {
	tb.Helper()
	secret := NewKey()
	h := HashKey(secret)
	id, _ := newID(prefixKey)
	now := db.Now().Unix()
	_, err := db.w.Exec(`INSERT INTO keys (id, account_id, type, name, name_fold, hint, hash, status, scopes, allowed_sites,
		expires_at, created_at, updated_at) VALUES (?, ?, 'alias', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, accountID, name, FoldName(name), KeyHint(secret), h[:], status, scopes, sites, nullTime(expiresAt), now, now)
	if err != nil {
		tb.Fatalf("insert alias: %v", err)
	}
	return id, secret
}

func checkIndexCounts(tb testing.TB, db *DB) {
	tb.Helper()
	keys, accounts := db.IndexCounts()
	if want := queryInt(tb, db, `SELECT count(*) FROM keys`); int64(keys) != want {
		tb.Errorf("index holds %d keys, the database %d", keys, want)
	}
	if want := queryInt(tb, db, `SELECT count(*) FROM accounts`); int64(accounts) != want {
		tb.Errorf("index holds %d accounts, the database %d", accounts, want)
	}
}

func TestIndexAgreesWithDatabaseAfterReopen(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	path := storetest.DSN(t)
	db := mustOpenDBAt(t, path, WithClock(clock.Now))
	op := OperatorActor("")

	var secrets []string
	var accounts []Created
	plans := []string{"free", "pro", "mega", "enterprise"}
	// Enough keys to make the open-addressing table grow past its first size.
	for i := 0; i < 800; i++ {
		c := mustCreate(t, db, "acct"+string(rune('a'+i%26)), plans[i%len(plans)], int64(i))
		accounts = append(accounts, c)
		secrets = append(secrets, c.Secret)
		switch i % 10 {
		case 3:
			r, err := db.ResetPrimaryKey(ctx, op, c.Account.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, r.Secret)
		case 5:
			r, err := db.ResetPrimaryKey(ctx, op, c.Account.ID, 2*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, r.Secret)
		case 7:
			if _, err := db.UpdateAccount(ctx, op, c.Account.ID, AccountPatch{Status: ptr(AccountSuspended)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkIndexCounts(t, db)
	before := map[string]KeyView{}
	for _, s := range secrets {
		v := mustLookup(t, db, s)
		v.pos = 0
		before[s] = v
	}
	if _, ok := db.LookupKey(HashKey(NewKey())); ok {
		t.Error("a random key was found in the index")
	}

	// Aliases written behind the index's back are loaded on open.
	exp := t0.Add(time.Hour)
	aliasID, aliasSecret := insertAliasRow(t, db, accounts[1].Account.ID, "Client site", KeyActive, &exp,
		`["optimize","!admin"]`, `["example.com","shop.example.org"]`)
	inactiveID, inactiveSecret := insertAliasRow(t, db, accounts[1].Account.ID, "Old", KeyInactive, nil, `["*"]`, `[]`)
	db.Close()

	db = mustOpenDBAt(t, path, WithClock(clock.Now))
	checkIndexCounts(t, db)
	for s, want := range before {
		got := mustLookup(t, db, s)
		got.pos = 0
		if !equalView(got, want) {
			t.Errorf("after reopening key ...%s = %+v, before %+v", KeyHint(s), got, want)
		}
	}
	a := mustLookup(t, db, aliasSecret)
	if a.KeyID != aliasID || a.Type != KeyTypeAlias || a.IsPrimary() || a.Name != "Client site" || a.Hint != KeyHint(aliasSecret) ||
		a.ExpiresAt != exp.Unix() || a.AccountID != accounts[1].Account.ID || a.Plan != "pro" ||
		!equalStrings(a.Scopes, []string{"optimize", "!admin"}) || !equalStrings(a.Sites, []string{"example.com", "shop.example.org"}) {
		t.Errorf("alias view = %+v", a)
	}
	if err := a.Check(exp.Add(-time.Second)); err != nil {
		t.Errorf("alias before expiry: %v", err)
	}
	if err := a.Check(exp); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("alias at expiry: %v, want ErrKeyExpired", err)
	}
	in := mustLookup(t, db, inactiveSecret)
	if in.KeyID != inactiveID || !errors.Is(in.Check(clock.Now()), ErrKeyInactive) || !equalStrings(in.Scopes, []string{"*"}) || len(in.Sites) != 0 {
		t.Errorf("inactive alias view = %+v, check %v", in, in.Check(clock.Now()))
	}
}

func TestFollowChangesFromAnotherProcess(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	path := storetest.DSN(t)
	serving := mustOpenDBAt(t, path, WithClock(clock.Now))
	existing := mustCreate(t, serving, "existing", "free", 1)
	// The operator's command line opens the same file without an index.
	cli := mustOpenDBAt(t, path, WithClock(clock.Now), WithoutIndex())
	op := OperatorActor("cli")

	c := mustCreate(t, cli, "from-cli", "pro", 10)
	if _, ok := serving.LookupKey(HashKey(c.Secret)); ok {
		t.Fatal("the serving index saw a key before following changes")
	}
	if err := serving.followOnce(ctx); err != nil {
		t.Fatal(err)
	}
	v := mustLookup(t, serving, c.Secret)
	if v.AccountID != c.Account.ID || v.Plan != "pro" || v.Credits != 10 || v.Check(clock.Now()) != nil {
		t.Errorf("followed account: %+v", v)
	}
	checkIndexCounts(t, serving)

	// Nothing new: following again changes nothing and does not fail.
	if err := serving.followOnce(ctx); err != nil {
		t.Fatal(err)
	}
	checkIndexCounts(t, serving)

	// Several changes in one batch, including a new plan the account moves to.
	if _, err := cli.PutPlan(ctx, op, Plan{Name: "gold", AliasLimit: ptr(8), RateLimitPerMinute: ptr(100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UpdateAccount(ctx, op, c.Account.ID, AccountPatch{Plan: ptr("gold"), Status: ptr(AccountSuspended)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AddCredits(ctx, op, existing.Account.ID, 99, ""); err != nil {
		t.Fatal(err)
	}
	r, err := cli.ResetPrimaryKey(ctx, op, existing.Account.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := serving.followOnce(ctx); err != nil {
		t.Fatal(err)
	}
	v = mustLookup(t, serving, c.Secret)
	if v.Plan != "gold" || !errors.Is(v.Check(clock.Now()), ErrAccountSuspended) {
		t.Errorf("after following plan and suspension: plan %s check %v", v.Plan, v.Check(clock.Now()))
	}
	if err := checkKey(t, serving, existing.Secret, clock.Now()); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("key reset from the command line still validates: %v", err)
	}
	nv := mustLookup(t, serving, r.Secret)
	if nv.Credits != 100 || nv.Check(clock.Now()) != nil {
		t.Errorf("new key after following: credits %d check %v", nv.Credits, nv.Check(clock.Now()))
	}
	checkIndexCounts(t, serving)

	// FollowChanges does the same on its own; poll, bounded, for the effect.
	followCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { serving.FollowChanges(followCtx, 5*time.Millisecond); close(done) }()
	if _, err := cli.UpdateAccount(ctx, op, c.Account.ID, AccountPatch{Status: ptr(AccountActive)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := mustLookup(t, serving, c.Secret)
		if v.Check(clock.Now()) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FollowChanges did not pick up the reactivation within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("FollowChanges did not return after its context ended")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalView(a, b KeyView) bool {
	return equalStrings(a.Scopes, b.Scopes) && equalStrings(a.Sites, b.Sites) &&
		a.KeyID == b.KeyID && a.Type == b.Type && a.Name == b.Name && a.Hint == b.Hint && a.Status == b.Status &&
		a.ExpiresAt == b.ExpiresAt && a.ValidUntil == b.ValidUntil && a.AccountID == b.AccountID &&
		a.AccountStatus == b.AccountStatus && a.ParentSuspended == b.ParentSuspended && a.Plan == b.Plan && a.Credits == b.Credits
}
