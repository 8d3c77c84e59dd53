package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"keyd/store/migrate"
)

// schemaMigrationsTable records the migrations applied.
const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`

// Migrate applies every embedded migration not yet applied (see
// migrate.Apply) on writer, SQLite's one writer connection, so that nothing
// else writes meanwhile.
func (Engine) Migrate(ctx context.Context, writer *sql.DB, now time.Time) (int, error) {
	conn, err := writer.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	applied, err := migrate.Apply(ctx, conn, migrations, schemaMigrationsTable, now)
	if err != nil {
		return applied, fmt.Errorf("store: %w", err)
	}
	return applied, nil
}
