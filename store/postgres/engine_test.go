//go:build postgres

package postgres

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"keyd/store/postgres/pgtest"
)

// openMigrated opens the engine's pools on a new, migrated database.
func openMigrated(t *testing.T) (writer, readers *sql.DB) {
	t.Helper()
	url := pgtest.Database(t)
	if _, err := migrateAt(url, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	writer, readers, err := Engine{}.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close(); readers.Close() })
	return writer, readers
}

// The store's SQL, written with SQLite's placeholders, runs on PostgreSQL
// through the engine's connections: statements, prepared statements and
// transactions alike.
func TestEngineRunsTheStoresPlaceholders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	writer, readers := openMigrated(t)
	var sum int64
	var text string
	if err := readers.QueryRowContext(ctx, `SELECT ?::bigint + ?::bigint, '?' || ?2::text`, 2, 3).Scan(&sum, &text); err != nil {
		t.Fatal(err)
	}
	if sum != 5 || text != "?3" {
		t.Errorf("got %d and %q, want 5 and \"?3\"", sum, text)
	}
	tx, err := writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO plans (name, alias_limit, subaccount_limit, rate_limit_per_minute, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?5, ?5)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gold", "silver"} {
		if _, err := st.ExecContext(ctx, name, 10, 3, 1200, 1700000000); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := readers.QueryRowContext(ctx, `SELECT count(*) FROM plans WHERE name IN (?, ?)`, "gold", "silver").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d plans inserted through the engine, %v; want 2", n, err)
	}
}

// A unique constraint reads as SQLite's did, by table and column, so the
// store's retries and ErrNameTaken work alike on both engines.
func TestEngineUniqueViolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	writer, _ := openMigrated(t)
	insert := `INSERT INTO accounts (id, name, email, plan, status, credits, created_at, updated_at)
		VALUES (?, 'a', 'a@example.com', 'pro', 'active', 0, 0, 0)`
	if _, err := writer.ExecContext(ctx, insert, "acc_0000000000000001"); err != nil {
		t.Fatal(err)
	}
	_, err := writer.ExecContext(ctx, insert, "acc_0000000000000001")
	if err == nil {
		t.Fatal("a second account with the same id was stored")
	}
	e := Engine{}
	if !e.UniqueViolation(err, "accounts.id") {
		t.Errorf("not read as a unique violation of accounts.id: %v", err)
	}
	for _, other := range []string{"accounts.email", "keys.id", "id"} {
		if e.UniqueViolation(err, other) {
			t.Errorf("read as a unique violation of %s: %v", other, err)
		}
	}
	if e.StorageFailure(err) {
		t.Errorf("a unique violation read as a storage failure: %v", err)
	}
}

// The last event written is the sequence's, kept when the event is gone.
func TestEngineLastEventWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	writer, readers := openMigrated(t)
	e := Engine{}
	if last, err := e.LastEventWritten(ctx, readers); err != nil || last != 0 {
		t.Fatalf("before any event: %d, %v; want 0", last, err)
	}
	var seq int64
	if err := writer.QueryRowContext(ctx, `INSERT INTO events (type, actor_type, data, created_at_ms)
		VALUES ('plan.updated', 'system', '{}', 0) RETURNING seq`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.ExecContext(ctx, `DELETE FROM events WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	if last, err := e.LastEventWritten(ctx, readers); err != nil || last != seq {
		t.Errorf("after event %d was written and deleted: %d, %v", seq, last, err)
	}
}

// A server that cannot be reached is a storage failure, as a full disk is
// for SQLite: writes answer 503, not 500.
func TestEngineStorageFailure(t *testing.T) {
	t.Parallel()
	writer, readers, err := Engine{}.Open("postgres://keyd@127.0.0.1:1/keyd?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	defer readers.Close()
	err = writer.PingContext(context.Background())
	if err == nil {
		t.Fatal("a server on port 1 answered")
	}
	if !(Engine{}).StorageFailure(err) {
		t.Errorf("an unreachable server is not a storage failure: %v", err)
	}
	if (Engine{}).StorageFailure(errors.New("some other error")) {
		t.Error("any error reads as a storage failure")
	}
}

// The pool settings of pgx's URL size both pools; a bad one is refused.
func TestEnginePoolSettings(t *testing.T) {
	url := pgtest.Database(t)
	writer, readers, err := Engine{}.Open(url + "&pool_max_conns=3")
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	defer readers.Close()
	for name, db := range map[string]*sql.DB{"writer": writer, "readers": readers} {
		if n := db.Stats().MaxOpenConnections; n != 3 {
			t.Errorf("%s pool: at most %d connections, want 3", name, n)
		}
		if err := db.Ping(); err != nil {
			t.Errorf("%s pool: %v", name, err)
		}
	}
	if _, _, err := (Engine{}).Open(url + "&pool_max_conns=none"); err == nil {
		t.Fatal("pool_max_conns=none was accepted")
	}
}
