package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Columns lists the tables of the database (SQLite's own and
// schema_migrations aside) with the kind of each declared column: integer,
// text, blob or real, read by SQLite's rules of type affinity. A rowid
// table's implicit rowid is not a declared column and is not listed.
func (Engine) Columns(ctx context.Context, tx *sql.Tx) (map[string]map[string]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT m.name, p.name, p.type
		FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND m.name <> 'schema_migrations'`)
	if err != nil {
		return nil, fmt.Errorf("store: list columns: %w", err)
	}
	defer rows.Close()
	tables := map[string]map[string]string{}
	for rows.Next() {
		var table, column, declared string
		if err := rows.Scan(&table, &column, &declared); err != nil {
			return nil, err
		}
		if tables[table] == nil {
			tables[table] = map[string]string{}
		}
		tables[table][column] = affinity(declared)
	}
	return tables, rows.Err()
}

// affinity is the kind of a column of the declared type, by the rules of
// https://sqlite.org/datatype3.html#determination_of_column_affinity.
func affinity(declared string) string {
	t := strings.ToUpper(declared)
	switch {
	case strings.Contains(t, "INT"):
		return "integer"
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return "text"
	case t == "", strings.Contains(t, "BLOB"):
		return "blob"
	default:
		return "real"
	}
}

// Counters are the last values the AUTOINCREMENT columns handed out, by
// table, whether or not their rows are still kept.
func (Engine) Counters(ctx context.Context, tx *sql.Tx) (map[string]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`)
	if err != nil {
		return nil, fmt.Errorf("store: read counters: %w", err)
	}
	defer rows.Close()
	last := map[string]int64{}
	for rows.Next() {
		var table string
		var seq int64
		if err := rows.Scan(&table, &seq); err != nil {
			return nil, err
		}
		last[table] = seq
	}
	return last, rows.Err()
}

// MoveCounters moves the AUTOINCREMENT of each table named in last to at
// least its value, so that the numbers another database handed out (events
// since deleted among them) are never handed out again. Tables whose
// numbers are not AUTOINCREMENT here are left: a rowid table numbers its
// next row past its highest anyway.
func (Engine) MoveCounters(ctx context.Context, tx *sql.Tx, last map[string]int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND upper(sql) LIKE '%AUTOINCREMENT%'`)
	if err != nil {
		return fmt.Errorf("store: move counters: %w", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, table := range tables {
		seq, ok := last[table]
		if !ok {
			continue
		}
		// sqlite_sequence has no unique name: update the row if there is
		// one, add it if not.
		if _, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?`, seq, table, seq); err != nil {
			return fmt.Errorf("store: move counter of %s: %w", table, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq)
			SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)`, table, seq, table); err != nil {
			return fmt.Errorf("store: move counter of %s: %w", table, err)
		}
	}
	return nil
}
