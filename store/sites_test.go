package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"keyd/store/storetest"
)

func countedKey(t *testing.T, db *DB, maxSites int, releaseAfter *time.Duration) (Created, Created) {
	t.Helper()
	acc := mustCreate(t, db, "acme", "pro", 100)
	alias, err := db.CreateAlias(context.Background(), SystemActor, acc.Account.ID, NewAlias{Name: "client",
		MaxSites: &maxSites, ReleaseAfter: releaseAfter})
	if err != nil {
		t.Fatal(err)
	}
	return acc, alias
}

func TestSiteActivationsHoldUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	_, alias := countedKey(t, db, 3, nil)
	v := mustLookup(t, db, alias.Secret)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		activated, full int
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.UseSite(ctx, v, fmt.Sprintf("https://site%d.example/", i), time.Now())
			mu.Lock()
			defer mu.Unlock()
			var le *SiteLimitError
			switch {
			case err == nil:
				activated++
			case errors.As(err, &le):
				full++
				if le.Used != 3 || le.Limit != 3 {
					t.Errorf("refusal says %d of %d used, want 3 of 3", le.Used, le.Limit)
				}
			default:
				t.Errorf("UseSite: %v", err)
			}
		}()
	}
	wg.Wait()
	if activated != 3 || full != 47 {
		t.Errorf("%d activated, %d refused; want 3 and 47", activated, full)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM key_activations`); n != 3 {
		t.Errorf("%d activations stored, want 3", n)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM events WHERE type = ?`, EventSiteActivated); n != 3 {
		t.Errorf("%d site.activated events, want 3", n)
	}
}

func TestSiteActivationRules(t *testing.T) {
	ctx := context.Background()
	path := storetest.DSN(t)
	db := mustOpenDBAt(t, path)
	acc, alias := countedKey(t, db, 2, nil)
	v := mustLookup(t, db, alias.Secret)
	now := time.Now()
	use := func(site string) (SiteSlots, error) { t.Helper(); return db.UseSite(ctx, v, site, now) }
	events := func() int64 {
		return queryInt(t, db, `SELECT count(*) FROM events WHERE type IN (?, ?)`, EventSiteActivated, EventSiteReleased)
	}

	if s, err := use("https://A.example:443/shop"); err != nil || s != (SiteSlots{Used: 1, Limit: 2}) {
		t.Fatalf("first site: %+v, %v", s, err)
	}
	// The same host again, in another spelling, is answered from memory.
	if s, err := use("https://a.example./"); err != nil || s.Used != 1 || events() != 1 {
		t.Fatalf("same site: %+v, %v, %d events", s, err, events())
	}
	// Development hosts never take a slot; a missing site is refused.
	for _, dev := range []string{"http://localhost:8080", "https://shop.test", "http://127.0.0.1"} {
		if s, err := use(dev); err != nil || s.Used != 1 {
			t.Fatalf("%s: %+v, %v", dev, s, err)
		}
	}
	if _, err := use(""); !errors.Is(err, ErrSiteRequired) {
		t.Fatalf("no site: %v", err)
	}
	if _, err := use("https://b.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := use("https://c.example"); !errors.Is(err, ErrSiteLimit) {
		t.Fatalf("a third site: %v, want ErrSiteLimit", err)
	}
	// The owner releases one; the site itself another.
	if s, err := db.ReleaseSite(ctx, SystemActor, acc.Account.ID, alias.Key.ID, "A.EXAMPLE"); err != nil || s.Used != 1 {
		t.Fatalf("release a.example: %+v, %v", s, err)
	}
	if _, err := db.ReleaseSite(ctx, SystemActor, acc.Account.ID, alias.Key.ID, "a.example"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("release it again: %v, want ErrNotFound", err)
	}
	if _, err := use("https://c.example"); err != nil {
		t.Fatalf("c.example after a release: %v", err)
	}
	released, s, err := db.DeactivateSite(ctx, &v, "https://b.example/wp")
	if err != nil || !released || s.Used != 1 {
		t.Fatalf("deactivate b.example: %v %+v %v", released, s, err)
	}
	if released, _, err := db.DeactivateSite(ctx, &v, "https://b.example/wp"); err != nil || released {
		t.Fatalf("deactivate it again: %v %v, want nothing released", released, err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM events WHERE type = ? AND (data LIKE '%"reason":"owner"%' OR data LIKE '%"reason":"site"%')`,
		EventSiteReleased); n != 2 {
		t.Errorf("%d site.released events, want 2", n)
	}
	// Loaded again, the index knows the active sites: no new activation.
	db.Close()
	db = mustOpenDBAt(t, path)
	v = mustLookup(t, db, alias.Secret)
	if active, used := db.sites.seen(v.num, "c.example", 0); !active || used != 1 {
		t.Fatalf("after reopening, memory has c.example active %v, %d used; want true, 1", active, used)
	}
	before := events()
	if s, err := db.UseSite(ctx, v, "https://c.example", now); err != nil || s != (SiteSlots{Used: 1, Limit: 2}) || events() != before {
		t.Fatalf("after reopening: %+v, %v", s, err)
	}
	// Removing max_sites lets any site use the key.
	k, err := db.UpdateAlias(ctx, SystemActor, acc.Account.ID, alias.Key.ID, AliasPatch{LimitsPatch: LimitsPatch{SetMaxSites: true}})
	if err != nil || k.MaxSites != nil {
		t.Fatalf("remove max_sites: %+v, %v", k.MaxSites, err)
	}
	if v = mustLookup(t, db, alias.Secret); v.MaxSites != 0 {
		t.Fatalf("index still counts sites: %d", v.MaxSites)
	}
}

func TestIdleSitesAreReleased(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	month := 30 * 24 * time.Hour
	_, alias := countedKey(t, db, 5, &month)
	v := mustLookup(t, db, alias.Secret)
	for _, site := range []string{"https://kept.example", "https://gone.example"} {
		if _, err := db.UseSite(ctx, v, site, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(20 * 24 * time.Hour)
	if _, err := db.UseSite(ctx, v, "https://kept.example", clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Add(11 * 24 * time.Hour) // gone.example unseen for 31 days, kept.example for 11
	n, err := db.ReleaseIdleSites(ctx)
	if err != nil || n != 1 {
		t.Fatalf("released %d, %v; want 1", n, err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM key_activations WHERE host = 'kept.example'`); n != 1 {
		t.Errorf("kept.example lost its slot")
	}
	if n := queryInt(t, db, `SELECT count(*) FROM events WHERE type = ? AND data LIKE '%"site":"gone.example"%'
		AND data LIKE '%"reason":"idle"%'`, EventSiteReleased); n != 1 {
		t.Errorf("%d site.released (idle) events for gone.example, want 1", n)
	}
	// The memory's last sight was written: it survives without memory.
	if n := queryInt(t, db, `SELECT last_seen FROM key_activations WHERE host = 'kept.example'`); n != t0.Add(20*24*time.Hour).Unix() {
		t.Errorf("kept.example last_seen %d, want the validation 20 days in", n)
	}
	if n, err := db.ReleaseIdleSites(ctx); err != nil || n != 0 {
		t.Fatalf("second run released %d, %v", n, err)
	}
}

func TestSiteLimitBadInput(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	acc := mustCreate(t, db, "acme", "pro", 100)
	zero, minute := 0, time.Minute
	for _, in := range []NewAlias{{Name: "a", MaxSites: &zero}, {Name: "b", ReleaseAfter: &minute}} {
		_, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, in)
		var inv *InvalidError
		if !errors.As(err, &inv) || len(inv.Fields) != 1 {
			t.Errorf("%+v: %v, want an error naming the field", in, err)
		}
	}
}

// TestActiveSiteIsAnsweredWithoutAllocating keeps the common case of a key
// with max_sites, a site that already holds a slot, as cheap as memory.
func TestActiveSiteIsAnsweredWithoutAllocating(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	_, alias := countedKey(t, db, 2, nil)
	v := mustLookup(t, db, alias.Secret)
	now := time.Now()
	if _, err := db.UseSite(ctx, v, "https://client.example/", now); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := db.UseSite(ctx, v, "https://client.example/", now); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations for a site holding a slot, want 0", allocs)
	}
}
