package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type siteRow struct {
	site                             string
	first, last                      int64
	plugin, pluginVersion, wpVersion string
}

func readSites(tb testing.TB, db *DB, keyID string) []siteRow {
	tb.Helper()
	rows, err := db.r.Query(`SELECT site, first_seen, last_seen, plugin, plugin_version, wp_version FROM key_sites
		WHERE key_id = ? ORDER BY site`, keyID)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []siteRow
	for rows.Next() {
		var s siteRow
		if err := rows.Scan(&s.site, &s.first, &s.last, &s.plugin, &s.pluginVersion, &s.wpVersion); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func readUsage(tb testing.TB, db *DB, keyID, day string) (validations, failed, units int64) {
	tb.Helper()
	err := db.r.QueryRow(`SELECT validations, failed, units FROM key_usage_daily WHERE key_id = ? AND day = ?`, keyID, day).
		Scan(&validations, &failed, &units)
	if err != nil {
		tb.Fatalf("usage of %s on %s: %v", keyID, day, err)
	}
	return
}

func TestFlushActivity(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 1)
	other := mustCreate(t, db, "other", "free", 1)
	v := mustLookup(t, db, c.Secret)

	// Nothing pending: a flush is a no-op.
	if err := db.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}

	t1, t2, t3 := t0.Add(10*time.Second), t0.Add(20*time.Second), t0.Add(30*time.Second)
	db.RecordValidation(v, true, SiteReport{Site: "https://Example.com/blog/", Plugin: "shortpixel", PluginVersion: "5.1", WPVersion: "6.5"}, t1)
	db.RecordValidation(v, true, SiteReport{Site: "example.com/blog", WPVersion: "6.6"}, t3)
	db.RecordValidation(v, false, SiteReport{Site: "evil.test"}, t3.Add(time.Second))
	db.RecordValidation(v, true, SiteReport{}, t2)

	// Pending last use shows before any flush; the database has none yet.
	keys, err := db.ListKeys(ctx, c.Account.ID)
	if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(t2) {
		t.Errorf("ListKeys before flush: %+v, %v; want pending last use %v", keys, err, t2)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM key_last_used`); n != 0 {
		t.Errorf("validation wrote to the database before a flush: %d keys with last_used_at", n)
	}

	if err := db.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	// The last recorded use wins in memory (t2 was recorded after t3).
	if got := queryInt(t, db, `SELECT last_used_at FROM key_last_used WHERE key_id = ?`, c.Key.ID); got != t2.Unix() {
		t.Errorf("last_used_at = %d, want %d", got, t2.Unix())
	}
	if n := queryInt(t, db, `SELECT count(*) FROM key_last_used WHERE key_id = ?`, other.Key.ID); n != 0 {
		t.Error("an unused key got a last_used_at")
	}
	day := t0.Format(time.DateOnly)
	if val, failed, units := readUsage(t, db, c.Key.ID, day); val != 4 || failed != 1 || units != 0 {
		t.Errorf("usage = %d validations, %d failed, %d units; want 4, 1, 0", val, failed, units)
	}
	sites := readSites(t, db, c.Key.ID)
	want := siteRow{site: "example.com/blog", first: t1.Unix(), last: t3.Unix(), plugin: "shortpixel", pluginVersion: "5.1", wpVersion: "6.6"}
	if len(sites) != 1 || sites[0] != want {
		t.Errorf("key_sites = %+v, want only %+v (a failed validation records no site)", sites, want)
	}

	// A second batch adds to the counters, keeps first_seen and the newest
	// last_used_at, and a new day gets its own row.
	t4 := t0.Add(24 * time.Hour)
	db.RecordValidation(v, true, SiteReport{Site: "example.com/blog/", Plugin: "shortpixel-ai"}, t1.Add(time.Second))
	db.RecordValidation(v, false, SiteReport{}, t4)
	if err := db.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if val, failed, _ := readUsage(t, db, c.Key.ID, day); val != 5 || failed != 1 {
		t.Errorf("usage after second flush = %d/%d, want 5/1", val, failed)
	}
	if val, failed, _ := readUsage(t, db, c.Key.ID, t4.Format(time.DateOnly)); val != 1 || failed != 1 {
		t.Errorf("usage on the next day = %d/%d, want 1/1", val, failed)
	}
	sites = readSites(t, db, c.Key.ID)
	want = siteRow{site: "example.com/blog", first: t1.Unix(), last: t3.Unix(), plugin: "shortpixel-ai", pluginVersion: "5.1", wpVersion: "6.6"}
	if len(sites) != 1 || sites[0] != want {
		t.Errorf("key_sites after second flush = %+v, want %+v", sites, want)
	}
	if got := queryInt(t, db, `SELECT last_used_at FROM key_last_used WHERE key_id = ?`, c.Key.ID); got != t2.Unix() {
		t.Errorf("an older use moved last_used_at back to %d", got)
	}
}

func TestFlushActivityKeepsDataWhenItFails(t *testing.T) {
	clock := newFakeClock(t0)
	db := mustOpenDB(t, WithClock(clock.Now))
	c := mustCreate(t, db, "acme", "pro", 1)
	v := mustLookup(t, db, c.Secret)
	db.RecordValidation(v, true, SiteReport{Site: "a.example", Plugin: "p"}, t0.Add(time.Second))
	db.RecordValidation(v, false, SiteReport{}, t0.Add(2*time.Second))

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.FlushActivity(cancelled); err == nil {
		t.Fatal("FlushActivity with a cancelled context reported success")
	}
	if n := queryInt(t, db, `SELECT count(*) FROM key_usage_daily`); n != 0 {
		t.Fatalf("a failed flush wrote %d usage rows", n)
	}
	// More activity arrives before the retry; both batches are written.
	db.RecordValidation(v, true, SiteReport{Site: "a.example", WPVersion: "6.5"}, t0.Add(3*time.Second))
	if err := db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	if val, failed, _ := readUsage(t, db, c.Key.ID, t0.Format(time.DateOnly)); val != 3 || failed != 1 {
		t.Errorf("usage after the retry = %d/%d, want 3/1", val, failed)
	}
	if got := queryInt(t, db, `SELECT last_used_at FROM key_last_used WHERE key_id = ?`, c.Key.ID); got != t0.Add(3*time.Second).Unix() {
		t.Errorf("last_used_at after the retry = %d", got)
	}
	want := siteRow{site: "a.example", first: t0.Add(time.Second).Unix(), last: t0.Add(3 * time.Second).Unix(), plugin: "p", wpVersion: "6.5"}
	if sites := readSites(t, db, c.Key.ID); len(sites) != 1 || sites[0] != want {
		t.Errorf("key_sites after the retry = %+v, want %+v", sites, want)
	}
}

// TestRecordValidationConcurrentWithFlushes counts validations recorded from
// many goroutines, across a change of day, while flushes run: every one must
// be written exactly once.
func TestRecordValidationConcurrentWithFlushes(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	c := mustCreate(t, db, "acme", "pro", 1)
	v := mustLookup(t, db, c.Secret)
	const workers, each = 8, 500
	day1 := t0
	day2 := t0.Add(24 * time.Hour)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	flushed := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				flushed <- db.FlushActivity(ctx)
				return
			default:
				if err := db.FlushActivity(ctx); err != nil {
					flushed <- err
					return
				}
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				at := day1
				if i >= each/2 {
					at = day2
				}
				report := SiteReport{Site: fmt.Sprintf("https://site%d.example/", w)}
				db.RecordValidation(v, i%5 != 0, report, at)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	for _, day := range []time.Time{day1, day2} {
		val, failed, _ := readUsage(t, db, c.Key.ID, day.Format(time.DateOnly))
		if val != workers*each/2 || failed != workers*each/2/5 {
			t.Errorf("%s: %d validations, %d failed; want %d, %d", day.Format(time.DateOnly), val, failed, workers*each/2, workers*each/2/5)
		}
	}
	if sites := readSites(t, db, c.Key.ID); len(sites) != workers {
		t.Errorf("%d sites recorded, want %d", len(sites), workers)
	}
}

// TestFlushActivityInChunks flushes more rows than one chunk holds: all of
// them arrive, and nothing is left pending.
func TestFlushActivityInChunks(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	c := mustCreate(t, db, "acme", "pro", 1)
	v := mustLookup(t, db, c.Secret)
	days := flushChunk + flushChunk/2
	for d := range days {
		db.RecordValidation(v, true, SiteReport{}, t0.Add(time.Duration(d)*24*time.Hour))
	}
	if err := db.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM key_usage_daily WHERE key_id = ? AND validations = 1`, c.Key.ID); n != int64(days) {
		t.Errorf("%d daily rows written, want %d", n, days)
	}
	if pending := db.pendingDaily(); len(pending) != 0 {
		t.Errorf("%d daily counters still pending after the flush", len(pending))
	}
}

// TestActivityRowsInKeyOrder: a flush writes table by table, and within a
// table in the order of the primary key, whatever order the keys were used in.
func TestActivityRowsInKeyOrder(t *testing.T) {
	db := mustOpenDB(t)
	var views []KeyView
	for i := range 20 {
		c := mustCreate(t, db, fmt.Sprintf("acct %d", i), "pro", 1)
		views = append(views, mustLookup(t, db, c.Secret))
	}
	for i, v := range views {
		at := t0.Add(time.Duration(i%3) * 24 * time.Hour)
		db.RecordValidation(v, true, SiteReport{Site: fmt.Sprintf("https://s%d.example/", 9-i%10)}, at)
		db.RecordValidation(v, true, SiteReport{Site: "https://a.example/"}, at.Add(-24*time.Hour))
	}
	db.collect()
	a := db.activity
	a.mu.Lock()
	rows := db.activityRows(a.lastUsed, a.daily, a.sites)
	a.mu.Unlock()
	if want := 20 + 40 + 40; len(rows) != want {
		t.Fatalf("%d rows to write, want %d (last used, two days and two sites for each of 20 keys)", len(rows), want)
	}
	ordered := slices.IsSortedFunc(rows, func(a, b activityRow) int {
		return cmp.Or(cmp.Compare(a.table, b.table), strings.Compare(formatID(prefixKey, a.key), formatID(prefixKey, b.key)),
			cmp.Compare(a.day, b.day), strings.Compare(a.site, b.site))
	})
	if !ordered {
		t.Error("rows are not in table, key id, day and site order")
	}
}

// TestLastUsedKeptToTheHour: last_used_at is written again only an hour on,
// while the API shows the exact last use from memory.
func TestLastUsedKeptToTheHour(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	c := mustCreate(t, db, "acme", "pro", 1)
	v := mustLookup(t, db, c.Secret)
	stored := func() int64 {
		return queryInt(t, db, `SELECT coalesce((SELECT last_used_at FROM key_last_used WHERE key_id = ?), 0)`, c.Key.ID)
	}
	for _, step := range []struct {
		use        time.Duration
		wantStored time.Duration
	}{{10 * time.Second, 10 * time.Second}, {20 * time.Minute, 10 * time.Second}, {2 * time.Hour, 2 * time.Hour}} {
		db.RecordValidation(v, true, SiteReport{}, t0.Add(step.use))
		if err := db.FlushActivity(ctx); err != nil {
			t.Fatal(err)
		}
		if got := stored(); got != t0.Add(step.wantStored).Unix() {
			t.Errorf("after a use at +%v: stored last_used_at %d, want +%v", step.use, got-t0.Unix(), step.wantStored)
		}
		keys, err := db.ListKeys(ctx, c.Account.ID)
		if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(t0.Add(step.use)) {
			t.Errorf("after a use at +%v: ListKeys shows %+v, %v", step.use, keys, err)
		}
	}
}

func TestNormalizeSite(t *testing.T) {
	for in, want := range map[string]string{
		"https://Example.COM/":        "example.com",
		"http://example.com:8080/wp/": "example.com:8080/wp",
		"example.com/blog//":          "example.com/blog",
		"  shop.example.org  ":        "shop.example.org",
		"":                            "",
		"https://":                    "",
		"::::":                        "",
		// One site however a browser or WordPress writes it.
		"https://Example.com.:443/wp/":   "example.com/wp",
		"http://example.com:80":          "example.com",
		"example.com:80/blog":            "example.com/blog",
		"https://example.com:80/":        "example.com:80",
		"http://example.com:443/":        "example.com:443",
		"https://BÜCHER.example/":        "xn--bcher-kva.example",
		"https://b%C3%BCcher.example./x": "xn--bcher-kva.example/x",
		"https://xn--bcher-kva.example/": "xn--bcher-kva.example",
		"http://[2001:DB8::1]:80/":       "[2001:db8::1]",
	} {
		if got := NormalizeSite(in); got != want {
			t.Errorf("NormalizeSite(%q) = %q, want %q", in, got, want)
		}
	}
}
