// Package postgres is keyd's PostgreSQL engine (15 or newer), beside
// store/sqlite: the schema's migrations, numbered as SQLite's in
// store/sqlite/migrations so that a schema version means the same on both
// engines, the function that applies them, and Engine (engine.go), which
// gives the store database/sql connections through pgx that take its SQL.
// keyd uses it for a postgres:// or postgresql:// database URL.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock Migrate holds, so that replicas
// starting together apply each migration once, one after the other
// ("keyd" in ASCII).
const migrationLock = 0x6b657964

// migration is one embedded file, NNNN_name.sql.
type migration struct {
	version int
	name    string // the file name, recorded in schema_migrations
	path    string // in migrationFiles
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	paths, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, path := range paths {
		name := strings.TrimPrefix(path, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("postgres: migration %s has no numeric prefix", name)
		}
		ms = append(ms, migration{version: version, name: name, path: path})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// LatestSchemaVersion is the highest migration this build knows.
func LatestSchemaVersion() int {
	ms, _ := migrations()
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate applies every embedded migration not yet recorded in
// schema_migrations, each in its own transaction, and reports how many it
// applied; now is recorded as when. It holds a session advisory lock on
// conn meanwhile: a second Migrate on the same database, from this process
// or another, waits and then finds nothing left to apply.
func Migrate(ctx context.Context, conn *pgx.Conn, now time.Time) (applied int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return 0, fmt.Errorf("postgres: lock for migrations: %w", err)
	}
	defer func() {
		// The lock goes with the session if conn is broken; otherwise it
		// must go now, even when ctx has ended.
		if _, unlockErr := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLock); unlockErr != nil && err == nil {
			err = fmt.Errorf("postgres: unlock after migrations: %w", unlockErr)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", m.version).Scan(&done); err != nil {
			return applied, err
		}
		if done {
			continue
		}
		body, err := migrationFiles.ReadFile(m.path)
		if err != nil {
			return applied, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// Without arguments pgx sends the file as one simple query, so
			// it may hold several statements.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
				m.version, m.name, now.Unix())
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("postgres: migration %s: %w", m.name, err)
		}
		applied++
	}
	return applied, nil
}

// SchemaVersion is the highest migration applied (0 with schema_migrations
// empty; an error before Migrate has made it).
func SchemaVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v *int64
	err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v)
	if err != nil || v == nil {
		return 0, err
	}
	return int(*v), nil
}
