package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyd/store/sqlite"
)

// migrateTo applies the embedded migrations up to version by hand, recording
// them as Migrate does, so a test can put rows into an older schema.
func migrateTo(t *testing.T, path string, version int) {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= version; v++ {
		names, _ := fs.Glob(sqlite.Engine{}.Migrations(), fmt.Sprintf("migrations/%04d_*.sql", v))
		if len(names) != 1 {
			t.Fatalf("migration %d: found %v", v, names)
		}
		body, err := fs.ReadFile(sqlite.Engine{}.Migrations(), names[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", names[0], err)
		}
		if _, err := raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, v, filepath.Base(names[0])); err != nil {
			t.Fatal(err)
		}
	}
}

// openMigratedFrom builds a database at schema version, runs rows (SQL) on
// it, and opens it, which migrates it to the latest schema.
func openMigratedFrom(t *testing.T, version int, rows ...string) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyd.db")
	migrateTo(t, path, version)
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range rows {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if v, err := db.SchemaVersion(context.Background()); err != nil || v <= version {
		t.Fatalf("schema version %d, %v; want past %d", v, err, version)
	}
	return db
}

// dumpRows returns what q selects, fields joined by "," and rows by ";".
func dumpRows(t *testing.T, db *DB, q string) string {
	t.Helper()
	rows, err := db.r.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var fields []string
		for _, v := range vals {
			fields = append(fields, v.String)
		}
		out = append(out, strings.Join(fields, ","))
	}
	return strings.Join(out, ";")
}

// An account with two keys, for databases of an older schema.
const (
	oldSchemaAccount = `INSERT INTO accounts (id, name, email, plan, status, credits, created_at, updated_at)
		VALUES ('acc_0000000000000001', 'A', 'a@example.com', 'pro', 'active', 10, 0, 0)`
	oldSchemaKeys = `INSERT INTO keys (id, account_id, type, name, name_fold, hint, hash, status, created_at, updated_at)
		VALUES ('key_0000000000000001', 'acc_0000000000000001', 'primary', 'Primary key', 'primary key', 'abcd', zeroblob(32), 'active', 0, 0),
		('key_0000000000000002', 'acc_0000000000000001', 'alias', 'Shop', 'shop', 'efgh', randomblob(32), 'active', 0, 0)`
)

// Migration 5 rebuilds the activity tables without rowids: every row they
// held before is still there, and they no longer have a rowid.
func TestActivityTablesMigrateWithoutRowid(t *testing.T) {
	db := openMigratedFrom(t, 4, oldSchemaAccount, oldSchemaKeys,
		`INSERT INTO key_sites VALUES ('key_0000000000000001', 'https://a.example/', 100, 200, 'p', '1.0', '6.8'),
			('key_0000000000000001', 'https://b.example/', 150, 160, '', '', '')`,
		`INSERT INTO key_usage_daily VALUES ('key_0000000000000001', '2026-11-20', 7, 2, 30),
			('key_0000000000000001', '2026-11-21', 1, 0, 0)`)
	if got, want := dumpRows(t, db, `SELECT * FROM key_sites ORDER BY site`),
		"key_0000000000000001,https://a.example/,100,200,p,1.0,6.8;key_0000000000000001,https://b.example/,150,160,,,"; got != want {
		t.Errorf("key_sites after migration:\n got %s\nwant %s", got, want)
	}
	if got, want := dumpRows(t, db, `SELECT * FROM key_usage_daily ORDER BY day`),
		"key_0000000000000001,2026-11-20,7,2,30;key_0000000000000001,2026-11-21,1,0,0"; got != want {
		t.Errorf("key_usage_daily after migration:\n got %s\nwant %s", got, want)
	}
	for _, table := range []string{"key_sites", "key_usage_daily"} {
		if _, err := db.r.Exec("SELECT rowid FROM " + table); err == nil {
			t.Errorf("%s still has a rowid", table)
		}
	}
	// The foreign keys still hold: a row for a key that does not exist is refused.
	if _, err := db.w.Exec(`INSERT INTO key_usage_daily VALUES ('key_ffffffffffffffff', '2026-11-21', 1, 0, 0)`); err == nil {
		t.Error("key_usage_daily took a row for a key that does not exist")
	}
}

// Migration 6 moves last uses out of the keys table: a key's stored last use
// is kept, a key never used stays without one, and the API still shows both.
func TestLastUsedMigratesToItsOwnTable(t *testing.T) {
	db := openMigratedFrom(t, 5, oldSchemaAccount, oldSchemaKeys,
		`UPDATE keys SET last_used_at = 1700000000 WHERE id = 'key_0000000000000001'`)
	if got, want := dumpRows(t, db, `SELECT * FROM key_last_used`), "key_0000000000000001,1700000000"; got != want {
		t.Errorf("key_last_used after migration: got %q, want %q", got, want)
	}
	if _, err := db.r.Exec(`SELECT last_used_at FROM keys`); err == nil {
		t.Error("keys still has last_used_at")
	}
	keys, err := db.ListKeys(context.Background(), "acc_0000000000000001")
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys: %+v, %v", keys, err)
	}
	if keys[0].LastUsedAt == nil || keys[0].LastUsedAt.Unix() != 1700000000 || keys[1].LastUsedAt != nil {
		t.Errorf("last uses after migration: %v and %v, want 1700000000 and none", keys[0].LastUsedAt, keys[1].LastUsedAt)
	}
	if _, err := db.w.Exec(`INSERT INTO key_last_used VALUES ('key_ffffffffffffffff', 1)`); err == nil {
		t.Error("key_last_used took a row for a key that does not exist")
	}
}

func TestSubaccountLimitMigration(t *testing.T) {
	db := openMigratedFrom(t, 6, `INSERT INTO plans (name, alias_limit, rate_limit_per_minute, created_at, updated_at) VALUES ('gold', 10, 100, 0, 0)`,
		oldSchemaAccount)
	// The seeded plans get their limits; a plan the operator added allows
	// none until the operator says how many.
	if got, want := dumpRows(t, db, `SELECT name, coalesce(subaccount_limit, 'per-account') FROM plans ORDER BY rowid`),
		"free,0;pro,5;mega,25;enterprise,per-account;gold,per-account"; got != want {
		t.Errorf("plans after migration: got %q, want %q", got, want)
	}
	if got := dumpRows(t, db, `SELECT count(*) FROM accounts WHERE subaccount_limit_override IS NULL`); got != "1" {
		t.Errorf("accounts without an override after migration: %s, want 1", got)
	}
}

// Migration 12 records when primary keys were replaced: a key replaced by a
// reset before it gets its updated_at, which only the reset set; the
// index hands the time of the key in grace to validation.
func TestReplacedAtMigration(t *testing.T) {
	now := time.Now().Unix()
	db := openMigratedFrom(t, 9, oldSchemaAccount, oldSchemaKeys,
		fmt.Sprintf(`UPDATE keys SET valid_until = %d, updated_at = %d WHERE id = 'key_0000000000000001'`, now+3600, now-60))
	if got, want := dumpRows(t, db, `SELECT id, coalesce(replaced_at, 'none') FROM keys ORDER BY id`),
		fmt.Sprintf("key_0000000000000001,%d;key_0000000000000002,none", now-60); got != want {
		t.Errorf("replaced_at after migration: got %q, want %q", got, want)
	}
	v, ok := db.LookupKey([32]byte{})
	if !ok || v.ReplacedAt != now-60 || v.ValidUntil != now+3600 {
		t.Errorf("key in grace in the index: %+v, %v; want replaced at %d", v, ok, now-60)
	}
}
