package store

import (
	"context"
	"testing"
	"time"

	"keyd/store/storetest"
)

// Two processes serving one database (replicas on PostgreSQL, or keyd and
// a second keyd on one SQLite file) each flush what they counted: the
// counts add up, and the last use is the latest of the two, whichever
// flushes last.
func TestActivityFlushesOfTwoProcessesAddUp(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	a := mustOpenDBAt(t, dsn)
	acc := mustCreate(t, a, "acme", "pro", 100)
	b := mustOpenDBAt(t, dsn)
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	later := day.Add(2 * time.Hour)

	va, vb := mustLookup(t, a, acc.Secret), mustLookup(t, b, acc.Secret)
	for range 3 {
		a.RecordValidation(va, true, SiteReport{Site: "https://a.example"}, later)
	}
	a.RecordValidation(va, false, SiteReport{}, later)
	for range 5 {
		b.RecordValidation(vb, true, SiteReport{Site: "https://a.example"}, day)
	}
	// a, which saw the later use, flushes first.
	if err := a.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, a, `SELECT sum(validations) FROM key_usage_daily WHERE key_id = ?`, acc.Key.ID); n != 9 {
		t.Errorf("%d validations counted, want 9 (4 on one, 5 on the other)", n)
	}
	if n := queryInt(t, a, `SELECT sum(failed) FROM key_usage_daily WHERE key_id = ?`, acc.Key.ID); n != 1 {
		t.Errorf("%d failed validations counted, want 1", n)
	}
	if last := queryInt(t, a, `SELECT last_used_at FROM key_last_used WHERE key_id = ?`, acc.Key.ID); last < later.Add(-time.Hour).Unix() {
		t.Errorf("last use %v, want the later one (%v), not the one flushed last", time.Unix(last, 0).UTC(), later)
	}
	first := queryInt(t, a, `SELECT first_seen FROM key_sites WHERE key_id = ?`, acc.Key.ID)
	last := queryInt(t, a, `SELECT last_seen FROM key_sites WHERE key_id = ?`, acc.Key.ID)
	if first > day.Unix() || last < later.Add(-time.Hour).Unix() {
		t.Errorf("site seen from %v to %v, want from the earlier use to the later", time.Unix(first, 0).UTC(), time.Unix(last, 0).UTC())
	}
}
