// Package postgres is keyd's PostgreSQL engine (15 or newer), beside
// store/sqlite: the schema's migrations, numbered as SQLite's in
// store/sqlite/migrations so that a schema version means the same on both
// engines, applied under an advisory lock, and Engine (engine.go), which
// gives the store database/sql connections through pgx that take its SQL.
// keyd uses it for a postgres:// or postgresql:// database URL.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"time"

	"keyd/store/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock Migrate holds, so that replicas
// starting together apply each migration once, one after the other
// ("keyd" in ASCII).
const migrationLock = 0x6b657964

// schemaMigrationsTable records the migrations applied.
const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`

// Migrate applies every embedded migration not yet applied (see
// migrate.Apply) on one of writer's connections. It holds a session
// advisory lock meanwhile: a second Migrate on the same database, from this
// process or another, waits and then finds nothing left to apply.
func (Engine) Migrate(ctx context.Context, writer *sql.DB, now time.Time) (applied int, err error) {
	conn, err := writer.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLock); err != nil {
		return 0, fmt.Errorf("postgres: lock for migrations: %w", err)
	}
	defer func() {
		// The lock must go now, even when ctx has ended. When it cannot,
		// the connection is dropped, and the lock with its session.
		if _, unlockErr := conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(?)", migrationLock); unlockErr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = fmt.Errorf("postgres: unlock after migrations: %w", unlockErr)
			}
		}
	}()
	applied, err = migrate.Apply(ctx, conn, migrationFiles, schemaMigrationsTable, now)
	if err != nil {
		return applied, fmt.Errorf("postgres: %w", err)
	}
	return applied, nil
}
