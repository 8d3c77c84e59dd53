package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Columns lists the tables of the database's schema (schema_migrations
// aside) with the kind of each column: integer, text, blob or real, or
// PostgreSQL's name of any other type.
func (Engine) Columns(ctx context.Context, tx *sql.Tx) (map[string]map[string]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.table_name, c.column_name, c.data_type
		FROM information_schema.columns c JOIN information_schema.tables t
			ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
			AND c.table_name <> 'schema_migrations'`)
	if err != nil {
		return nil, fmt.Errorf("store: list columns: %w", err)
	}
	defer rows.Close()
	tables := map[string]map[string]string{}
	for rows.Next() {
		var table, column, typ string
		if err := rows.Scan(&table, &column, &typ); err != nil {
			return nil, err
		}
		if tables[table] == nil {
			tables[table] = map[string]string{}
		}
		tables[table][column] = kind(typ)
	}
	return tables, rows.Err()
}

// kind is the kind of a column of PostgreSQL's type typ, named as SQLite's
// affinities.
func kind(typ string) string {
	switch typ {
	case "bigint", "integer", "smallint":
		return "integer"
	case "text", "character varying", "character":
		return "text"
	case "bytea":
		return "blob"
	case "double precision", "real", "numeric":
		return "real"
	}
	return typ
}

// identity is an identity column.
type identity struct{ table, column string }

// identities are the identity columns of the database's schema.
func identities(ctx context.Context, tx *sql.Tx) ([]identity, error) {
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name, column_name`)
	if err != nil {
		return nil, fmt.Errorf("store: list identities: %w", err)
	}
	defer rows.Close()
	var ids []identity
	for rows.Next() {
		var id identity
		if err := rows.Scan(&id.table, &id.column); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Counters are the last values the identity columns handed out, by table
// (the schema has at most one identity per table), whether or not their
// rows are still kept; an identity never used is left out.
func (Engine) Counters(ctx context.Context, tx *sql.Tx) (map[string]int64, error) {
	ids, err := identities(ctx, tx)
	if err != nil {
		return nil, err
	}
	last := map[string]int64{}
	for _, id := range ids {
		var v sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT pg_sequence_last_value(pg_get_serial_sequence(?, ?))`,
			pgx.Identifier{id.table}.Sanitize(), id.column).Scan(&v); err != nil {
			return nil, fmt.Errorf("store: read counter of %s.%s: %w", id.table, id.column, err)
		}
		if v.Valid {
			last[id.table] = v.Int64
		}
	}
	return last, nil
}

// MoveCounters moves every identity past the highest value its column holds
// and past the table's value in last, so that rows added later, which take
// their numbers from it, do not collide with the rows copied with theirs,
// and event numbers keep increasing. setval is not undone by a rollback:
// a copy that fails leaves the identities higher, which costs nothing.
func (Engine) MoveCounters(ctx context.Context, tx *sql.Tx, last map[string]int64) error {
	ids, err := identities(ctx, tx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		var highest sql.NullInt64
		q := fmt.Sprintf(`SELECT max(%s) FROM %s`, pgx.Identifier{id.column}.Sanitize(), pgx.Identifier{id.table}.Sanitize())
		if err := tx.QueryRowContext(ctx, q).Scan(&highest); err != nil {
			return fmt.Errorf("store: move counter of %s.%s: %w", id.table, id.column, err)
		}
		v := max(highest.Int64, last[id.table])
		if v < 1 {
			continue // nothing copied: the identity starts where it is
		}
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence(?, ?), ?)`,
			pgx.Identifier{id.table}.Sanitize(), id.column, v); err != nil {
			return fmt.Errorf("store: move counter of %s.%s: %w", id.table, id.column, err)
		}
	}
	return nil
}
