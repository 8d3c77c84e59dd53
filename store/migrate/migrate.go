// Package migrate applies a schema's migrations on either engine: the
// files migrations/NNNN_name.sql an engine embeds, each once, in the order
// of their numbers, each in a transaction of its own together with its
// record in schema_migrations. The engines differ only in that table's
// column types and in how they keep two processes from migrating at once,
// which they see to themselves.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// File is one migration.
type File struct {
	Version int
	Name    string // the file name, recorded in schema_migrations
	Path    string // in the engine's files
}

// Files lists the migrations in fsys in version order.
func Files(fsys fs.FS) ([]File, error) {
	paths, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	files := make([]File, 0, len(paths))
	for _, path := range paths {
		name := strings.TrimPrefix(path, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s has no numeric prefix", name)
		}
		files = append(files, File{Version: version, Name: name, Path: path})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Version < files[j].Version })
	return files, nil
}

// Latest is the highest version in fsys; 0 for none.
func Latest(fsys fs.FS) int {
	files, _ := Files(fsys)
	if len(files) == 0 {
		return 0
	}
	return files[len(files)-1].Version
}

// Apply applies on conn every migration in fsys not yet recorded in
// schema_migrations, which createTable makes when it is missing, and
// reports how many it applied; now is recorded as when. conn takes the
// store's ? placeholders. The caller keeps other processes from migrating
// meanwhile.
func Apply(ctx context.Context, conn *sql.Conn, fsys fs.FS, createTable string, now time.Time) (applied int, err error) {
	files, err := Files(fsys)
	if err != nil {
		return 0, err
	}
	if _, err := conn.ExecContext(ctx, createTable); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, f := range files {
		var done bool
		if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)", f.Version).Scan(&done); err != nil {
			return applied, err
		}
		if done {
			continue
		}
		body, err := fs.ReadFile(fsys, f.Path)
		if err != nil {
			return applied, err
		}
		if err := applyOne(ctx, conn, f, string(body), now); err != nil {
			return applied, fmt.Errorf("migration %s: %w", f.Name, err)
		}
		applied++
	}
	return applied, nil
}

// applyOne runs one migration's statements and records it, in one
// transaction.
func applyOne(ctx context.Context, conn *sql.Conn, f File, body string, now time.Time) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Without arguments both drivers run the text as it is, so a file may
	// hold several statements.
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		f.Version, f.Name, now.Unix()); err != nil {
		return err
	}
	return tx.Commit()
}
