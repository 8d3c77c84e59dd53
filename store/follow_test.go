package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"keyd/store/storetest"
)

// A process following another's changes (a replica, or keyd beside an
// operator command) reads back only the key an event names, where it
// can: after every kind of change its index must still agree, key by key,
// with an index loaded from the database afresh.
func TestFollowerAgreesWithAFreshLoadAfterEveryKindOfChange(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	dsn := storetest.DSN(t)
	writer := mustOpenDBAt(t, dsn, WithClock(clock.Now))
	follower := mustOpenDBAt(t, dsn, WithClock(clock.Now))
	acc := mustCreate(t, writer, "acme", "pro", 100)
	owner := Actor{Type: ActorPrimary, KeyID: acc.Key.ID, IP: "198.51.100.7"}
	id := acc.Account.ID
	secrets := []string{acc.Secret}

	newAlias := func(name string, in NewAlias) Created {
		t.Helper()
		in.Name = name
		c, err := writer.CreateAlias(ctx, owner, id, in)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, c.Secret)
		return c
	}
	two, hour := 2, time.Hour
	in := clock.Now().Add(hour)
	scoped := newAlias("scoped", NewAlias{Scopes: []string{"optimize", "convert"}})
	sites := newAlias("sites", NewAlias{MaxSites: &two})
	gone := newAlias("gone", NewAlias{})
	paused := newAlias("paused", NewAlias{})
	newAlias("expiring", NewAlias{ExpiresAt: &in})
	num, err := parseID(prefixKey, sites.Key.ID)
	if err != nil {
		t.Fatal(err)
	}

	// After each change on its own, the follower follows and is compared
	// with a fresh load: one change's read must not hide another's.
	for _, step := range []struct {
		name   string
		change func() error
	}{
		{"nothing yet", func() error { return nil }},
		{"alias updated", func() error {
			_, err := writer.UpdateAlias(ctx, owner, id, scoped.Key.ID, AliasPatch{Scopes: []string{"optimize"}, AllowedSites: []string{"shop.example"}})
			return err
		}},
		{"alias deactivated", func() error { _, err := writer.SetAliasStatus(ctx, owner, id, paused.Key.ID, false); return err }},
		{"alias deleted", func() error { return writer.DeleteAlias(ctx, owner, id, gone.Key.ID) }},
		{"primary key renamed", func() error {
			name := "Main"
			_, err := writer.UpdatePrimaryKey(ctx, owner, id, acc.Key.ID, &name, nil)
			return err
		}},
		{"sites activated", func() error {
			if _, err := writer.UseSite(ctx, mustLookup(t, writer, sites.Secret), "https://one.example", clock.Now()); err != nil {
				return err
			}
			_, err := writer.UseSite(ctx, mustLookup(t, writer, sites.Secret), "https://two.example", clock.Now())
			return err
		}},
		{"site released", func() error { _, err := writer.ReleaseSite(ctx, owner, id, sites.Key.ID, "one.example"); return err }},
		{"alias created", func() error { newAlias("late", NewAlias{}); return nil }},
		{"credits added", func() error { _, err := writer.AddCredits(ctx, OperatorActor(""), id, 50, "top-up"); return err }},
		{"alias expired", func() error {
			clock.Add(2 * hour)
			_, _, err := writer.ExpireAliases(ctx, time.Hour)
			return err
		}},
		{"primary key reset", func() error {
			reset, err := writer.ResetPrimaryKey(ctx, owner, id, time.Hour)
			secrets = append(secrets, reset.Secret)
			return err
		}},
	} {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if err := follower.followOnce(ctx); err != nil {
			t.Fatal(err)
		}
		fresh := mustOpenDBAt(t, dsn, WithClock(clock.Now))
		for i, secret := range secrets {
			got, gotOK := follower.LookupKey(HashKey(secret))
			want, wantOK := fresh.LookupKey(HashKey(secret))
			// Where the key sits, and how many changes each index has
			// applied, are each index's own.
			got.pos, want.pos = 0, 0
			got.StateVersion, want.StateVersion = 0, 0
			if gotOK != wantOK || !reflect.DeepEqual(got, want) {
				t.Errorf("%s, key %d: the follower has\n%+v (%v)\na fresh load\n%+v (%v)", step.name, i, got, gotOK, want, wantOK)
			}
		}
		for _, host := range []string{"one.example", "two.example"} {
			gotActive, gotUsed := follower.sites.seen(num, host, clock.Now().Unix())
			wantActive, wantUsed := fresh.sites.seen(num, host, clock.Now().Unix())
			if gotActive != wantActive || gotUsed != wantUsed {
				t.Errorf("%s, %s: the follower has it active %v of %d slots used, a fresh load %v of %d",
					step.name, host, gotActive, gotUsed, wantActive, wantUsed)
			}
		}
		fresh.Close()
	}
}
