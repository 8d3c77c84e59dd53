//go:build postgres

package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"keyd/store/migrate"
	"keyd/store/postgres/pgtest"
	"keyd/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// migrateAt applies the migrations to the database at url as keyd does,
// through the engine's pools.
func migrateAt(url string, now time.Time) (int, error) {
	writer, readers, err := Engine{}.Open(url)
	if err != nil {
		return 0, err
	}
	defer readers.Close()
	defer writer.Close()
	return Engine{}.Migrate(context.Background(), writer, now)
}

// migrated returns a connection to a new database with every migration.
func migrated(t *testing.T) *pgx.Conn {
	t.Helper()
	url := pgtest.Database(t)
	if _, err := migrateAt(url, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	return pgtest.Connect(t, url)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Database(t)
	applied, err := migrateAt(url, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	if applied != len(files) || applied == 0 {
		t.Fatalf("applied %d migrations, want all %d", applied, len(files))
	}
	conn := pgtest.Connect(t, url)
	var v int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != sqliteLatest(t) || v != migrate.Latest(migrationFiles) {
		t.Fatalf("schema version %d; SQLite's latest %d, PostgreSQL's latest %d", v, sqliteLatest(t), migrate.Latest(migrationFiles))
	}
	var at int64
	if err := conn.QueryRow(ctx, `SELECT applied_at FROM schema_migrations WHERE version = 1`).Scan(&at); err != nil || at != 1700000000 {
		t.Fatalf("applied_at %d, %v; want 1700000000", at, err)
	}

	again, err := migrateAt(url, time.Unix(1800000000, 0))
	if err != nil || again != 0 {
		t.Fatalf("second Migrate applied %d, %v; want 0", again, err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE applied_at <> 1700000000`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d migrations recorded again, %v", n, err)
	}

	// The seeded plans, in the order SQLite's rowid gives them.
	var plans []string
	rows, _ := conn.Query(ctx, `SELECT name || ':' || coalesce(subaccount_limit::text, 'null') FROM plans ORDER BY rowid`)
	plans, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"free:0", "pro:5", "mega:25", "enterprise:null"}; !reflect.DeepEqual(plans, want) {
		t.Fatalf("plans %v, want %v", plans, want)
	}
	var lastSeq, writes int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT last_seq FROM webhook_cursor), (SELECT count FROM unlogged_writes)`).Scan(&lastSeq, &writes); err != nil || lastSeq != 0 || writes != 0 {
		t.Fatalf("webhook cursor %d, unlogged writes %d, %v; want 0, 0", lastSeq, writes, err)
	}
}

// Replicas starting together on a new database: each migration is applied
// once, and neither start fails.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	const starts = 4
	// The pools stay open to the end, so that a lock left held by one of
	// their sessions would show.
	writers := make([]*sql.DB, starts)
	for i := range writers {
		writer, readers, err := Engine{}.Open(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { writer.Close(); readers.Close() })
		writers[i] = writer
	}
	applied := make([]int, starts)
	errs := make([]error, starts)
	// A lock that is never let go makes the others wait: for a minute.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range starts {
		wg.Go(func() { applied[i], errs[i] = Engine{}.Migrate(ctx, writers[i], time.Now()) })
	}
	wg.Wait()
	total := 0
	for i := range starts {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != migrate.Latest(migrationFiles) {
		t.Fatalf("migrations applied %v (%d in all), want %d in all", applied, total, migrate.Latest(migrationFiles))
	}
	// The lock was let go: another session can take it at once.
	var got bool
	if err := pgtest.Connect(t, url).QueryRow(context.Background(), `SELECT pg_try_advisory_lock($1)`, migrationLock).Scan(&got); err != nil || !got {
		t.Fatalf("migration lock still held after Migrate: %v, %v", got, err)
	}
}

// A migration that fails leaves nothing of itself and is not recorded.
func TestMigrateFailedMigrationRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Database(t)
	conn := pgtest.Connect(t, url)
	// A table in the way of migration 0001's accounts.
	if _, err := conn.Exec(ctx, `CREATE TABLE accounts (x TEXT)`); err != nil {
		t.Fatal(err)
	}
	applied, err := migrateAt(url, time.Now())
	if err == nil || !strings.Contains(err.Error(), "0001_init.sql") {
		t.Fatalf("Migrate: %d, %v; want migration 0001_init.sql to fail", applied, err)
	}
	var plans, recorded int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'plans'`).Scan(&plans); err != nil || plans != 0 {
		t.Fatalf("plans table left by the failed migration: %d, %v", plans, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&recorded); err != nil || recorded != 0 {
		t.Fatalf("%d migrations recorded, %v; want 0", recorded, err)
	}
}

// The migrations of both engines have the same numbers and names.
func TestMigrationFilesMatchSQLite(t *testing.T) {
	names := func(pattern string) []string {
		paths, err := filepath.Glob(pattern)
		if err != nil || len(paths) == 0 {
			t.Fatalf("%s: %v, %v", pattern, paths, err)
		}
		for i := range paths {
			paths[i] = filepath.Base(paths[i])
		}
		return paths
	}
	sqlite, pg := names("../sqlite/migrations/*.sql"), names("migrations/*.sql")
	if !reflect.DeepEqual(sqlite, pg) {
		t.Fatalf("SQLite's migrations %v, PostgreSQL's %v", sqlite, pg)
	}
}

// rowidTables have an explicit rowid column on PostgreSQL, where keyd's
// queries order them by SQLite's implicit one.
var rowidTables = []string{"accounts", "keys", "plans", "receipt_keys", "webhook_endpoints", "webhook_messages"}

// schema is what the comparison sees of a database: for each table its
// columns ("name" or "name NOT NULL"), and the indexes made by name
// (those of primary keys and UNIQUE constraints have engine-made names).
type schema struct {
	tables  map[string][]string
	indexes []string
}

// Both engines end with the same tables, columns, nullability and named
// indexes, so that a migration added to one engine alone fails here.
func TestSchemaMatchesSQLite(t *testing.T) {
	t.Parallel()
	sqlite := sqliteSchema(t)
	pg := postgresSchema(t, migrated(t))
	for _, table := range rowidTables {
		cols := sqlite.tables[table]
		if cols == nil {
			t.Fatalf("SQLite has no table %s", table)
		}
		sqlite.tables[table] = sortedCopy(append(cols, "rowid NOT NULL"))
	}
	if !reflect.DeepEqual(sqlite.tables, pg.tables) {
		t.Errorf("tables differ:\n%s", diff(sqlite.tables, pg.tables))
	}
	if !reflect.DeepEqual(sqlite.indexes, pg.indexes) {
		t.Errorf("indexes differ:\nSQLite:     %v\nPostgreSQL: %v", sqlite.indexes, pg.indexes)
	}
}

// migratedSQLite is a new SQLite file migrated by its engine, as keyd does.
func migratedSQLite(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyd.db")
	w, r, err := sqlite.Engine{}.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := (sqlite.Engine{}).Migrate(context.Background(), w, time.Now()); err != nil {
		t.Fatal(err)
	}
	return path
}

// sqliteLatest is SQLite's latest schema version.
func sqliteLatest(t *testing.T) int {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+migratedSQLite(t)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// sqliteSchema migrates a new SQLite file as keyd does and reads its schema.
func sqliteSchema(t *testing.T) schema {
	t.Helper()
	path := migratedSQLite(t)
	raw, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	s := schema{tables: map[string][]string{}}
	tables := queryStrings(t, raw, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	for _, table := range tables {
		rows, err := raw.Query(`SELECT name, "notnull" OR pk > 0 FROM pragma_table_info(?)`, table)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for rows.Next() {
			var name string
			var notNull bool
			if err := rows.Scan(&name, &notNull); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, column(name, notNull))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		s.tables[table] = sortedCopy(cols)
	}
	// Indexes with SQL were made by CREATE INDEX; the others back a
	// PRIMARY KEY or UNIQUE constraint.
	s.indexes = sortedCopy(queryStrings(t, raw, `SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL`))
	return s
}

// postgresSchema reads the schema of conn's database.
func postgresSchema(t *testing.T, conn *pgx.Conn) schema {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT table_name, column_name, is_nullable = 'NO'
		FROM information_schema.columns WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	s := schema{tables: map[string][]string{}}
	for rows.Next() {
		var table, name string
		var notNull bool
		if err := rows.Scan(&table, &name, &notNull); err != nil {
			t.Fatal(err)
		}
		s.tables[table] = append(s.tables[table], column(name, notNull))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for table, cols := range s.tables {
		s.tables[table] = sortedCopy(cols)
	}
	rows, _ = conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
		AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	s.indexes = sortedCopy(names)
	return s
}

func column(name string, notNull bool) string {
	if notNull {
		return name + " NOT NULL"
	}
	return name
}

func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// diff lists the tables whose columns differ between the engines.
func diff(sqlite, pg map[string][]string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, m := range []map[string][]string{sqlite, pg} {
		for table := range m {
			if seen[table] || reflect.DeepEqual(sqlite[table], pg[table]) {
				continue
			}
			seen[table] = true
			fmt.Fprintf(&b, "  %s\n    SQLite:     %v\n    PostgreSQL: %v\n", table, sqlite[table], pg[table])
		}
	}
	return b.String()
}

// The same writes are refused, or allowed, by both engines' constraints.
// Each case runs its setup and then its statement on a new database of
// each engine; $1 is a 32-byte hash, or the case's hash.
func TestConstraintsMatchSQLite(t *testing.T) {
	t.Parallel()
	const account = `INSERT INTO accounts (id, name, email, plan, status, credits, created_at, updated_at)
		VALUES ('a1', 'A', 'a@example.com', 'pro', 'active', 10, 0, 0)`
	const primary = `INSERT INTO keys (id, account_id, type, name, name_fold, hint, hash, status, created_at, updated_at)
		VALUES ('k1', 'a1', 'primary', 'p', 'p', 'abcd', $1, 'active', 0, 0)`
	// An alias's hash is its id in 32 bytes, a literal both engines take.
	alias := func(id, name, status string) string {
		return `INSERT INTO keys (id, account_id, type, name, name_fold, hint, hash, status, created_at, updated_at)
			VALUES ('` + id + `', 'a1', 'alias', '` + name + `', lower('` + name + `'), 'abcd', '` + fmt.Sprintf("%-32s", id) + `', '` + status + `', 0, 0)`
	}
	cases := []struct {
		name    string
		setup   []string
		stmt    string
		hash    []byte // $1 of stmt; nil for 32 bytes
		refused bool
	}{
		{"an account", nil, account, nil, false},
		{"negative credits", nil, strings.Replace(account, "10, 0, 0", "-1, 0, 0", 1), nil, true},
		{"unknown plan", nil, strings.Replace(account, "'pro'", "'gold'", 1), nil, true},
		{"unknown status", nil, strings.Replace(account, "'active'", "'closed'", 1), nil, true},
		{"a missing parent", nil, strings.Replace(strings.Replace(account, "(id,", "(parent_id, id,", 1), "VALUES (", "VALUES ('a0', ", 1), nil, true},
		{"a key", []string{account}, primary, nil, false},
		{"a key of no account", nil, primary, nil, true},
		{"a short hash", []string{account}, primary, make([]byte, 31), true},
		{"a hash twice", []string{account, primary}, strings.Replace(primary, "'k1'", "'k2'", 1), nil, true},
		{"an alias name twice", []string{account, alias("k2", "Shop", "active")}, alias("k3", "shop", "inactive"), nil, true},
		{"an alias name again after revoking", []string{account, alias("k2", "Shop", "revoked")}, alias("k3", "shop", "active"), nil, false},
		{"a spend period of a week", []string{account, primary}, `UPDATE keys SET spend_limit = 5, spend_period = 'week'`, nil, true},
		{"a spend limit of 0", []string{account, primary}, `UPDATE keys SET spend_limit = 0, spend_period = 'day'`, nil, true},
		{"suspended by the operator", []string{account}, `UPDATE accounts SET suspended_by = 'operator'`, nil, true},
		{"suspended by the parent", []string{account}, `UPDATE accounts SET suspended_by = 'parent'`, nil, false},
		{"a second webhook cursor", nil, `INSERT INTO webhook_cursor (id, last_seq) VALUES (2, 0)`, nil, true},
		{"a spend below zero", []string{account, primary}, `INSERT INTO key_spend (key_id, period_start, spent) VALUES ('k1', 0, -1)`, nil, true},
		{"a plan's subaccount limit below zero", nil, `UPDATE plans SET subaccount_limit = -1`, nil, true},
		{"a renamed plan follows to its accounts", []string{account}, `UPDATE plans SET name = 'pro2' WHERE name = 'pro'`, nil, false},
	}
	// exec runs q with hash as $1 where q has it: both drivers refuse
	// arguments a statement does not use.
	type execer func(q string, args ...any) error
	exec := func(run execer, q string, hash []byte) error {
		if hash == nil {
			hash = make([]byte, 32)
		}
		if strings.Contains(q, "$1") {
			return run(q, hash)
		}
		return run(q)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			liteDB, pgConn := sqliteDB(t), migrated(t)
			lite := func(q string, args ...any) error { _, err := liteDB.Exec(q, args...); return err }
			pg := func(q string, args ...any) error { _, err := pgConn.Exec(ctx, q, args...); return err }
			for _, q := range c.setup {
				if err := exec(lite, q, nil); err != nil {
					t.Fatalf("SQLite: %s: %v", q, err)
				}
				if err := exec(pg, q, nil); err != nil {
					t.Fatalf("PostgreSQL: %s: %v", q, err)
				}
			}
			liteErr, pgErr := exec(lite, c.stmt, c.hash), exec(pg, c.stmt, c.hash)
			t.Logf("SQLite: %v; PostgreSQL: %v", liteErr, pgErr)
			if (liteErr != nil) != c.refused || (pgErr != nil) != c.refused {
				t.Fatalf("refused %v wanted; SQLite: %v; PostgreSQL: %v", c.refused, liteErr, pgErr)
			}
		})
	}
}

// sqliteDB opens a new SQLite database migrated as keyd does, with the
// foreign keys keyd turns on.
func sqliteDB(t *testing.T) *sql.DB {
	t.Helper()
	path := migratedSQLite(t)
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	t.Cleanup(func() { raw.Close() })
	return raw
}
