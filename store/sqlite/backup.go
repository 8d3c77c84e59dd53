package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"time"

	"github.com/mattn/go-sqlite3"
)

// BackupStepPages is how many pages one step of a backup copies (4 MiB of
// 4 KiB pages): between steps the copy notices a cancelled context. Tests
// make it smaller, so that a copy takes many steps.
var BackupStepPages = 1024

// BackupInto copies the database behind readers into the empty SQLite file
// at path through SQLite's online backup API, while keyd keeps serving. The
// copy is one consistent snapshot: it is read inside a single read
// transaction, which in WAL mode never blocks writers (their changes go on
// into the WAL and are simply not part of the copy). It is made page by page
// in steps, then put into rollback-journal mode (a single self-contained
// file; keyd puts it back into WAL mode when it opens it) and checked with
// PRAGMA integrity_check.
func (Engine) BackupInto(ctx context.Context, readers *sql.DB, path string) error {
	dst, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_busy_timeout=5000")
	if err != nil {
		return err
	}
	defer dst.Close()
	dconn, err := dst.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: backup: open %s: %w", path, err)
	}
	defer dconn.Close()
	sconn, err := readers.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer sconn.Close()

	err = sconn.Raw(func(sdc any) error {
		src, ok := sdc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("store: backup: unexpected driver connection %T", sdc)
		}
		// Hold one read transaction across every step: each step then
		// sees the same snapshot, and writes made meanwhile (by this
		// process or another) neither restart the copy nor wait for it.
		if err := beginRead(ctx, src); err != nil {
			return fmt.Errorf("store: backup: start a read transaction: %w", err)
		}
		defer src.ExecContext(context.Background(), "ROLLBACK", nil)
		return dconn.Raw(func(ddc any) error {
			d, ok := ddc.(*sqlite3.SQLiteConn)
			if !ok {
				return fmt.Errorf("store: backup: unexpected driver connection %T", ddc)
			}
			b, err := d.Backup("main", src, "main")
			if err != nil {
				return fmt.Errorf("store: backup: %w", err)
			}
			for {
				if err := ctx.Err(); err != nil {
					b.Finish()
					return err
				}
				before := b.Remaining()
				finished, err := b.Step(BackupStepPages)
				if err != nil {
					b.Finish()
					return fmt.Errorf("store: backup: %w", err)
				}
				if finished {
					break
				}
				if b.Remaining() == before && before > 0 {
					time.Sleep(10 * time.Millisecond) // busy or locked: try again
				}
			}
			if err := b.Finish(); err != nil {
				return fmt.Errorf("store: backup: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}

	var mode string
	if err := dconn.QueryRowContext(ctx, "PRAGMA journal_mode = DELETE").Scan(&mode); err != nil {
		return fmt.Errorf("store: backup: leave WAL mode: %w", err)
	}
	return Engine{}.IntegrityCheck(ctx, dconn)
}

// beginRead opens a read transaction on c.
func beginRead(ctx context.Context, c *sqlite3.SQLiteConn) error {
	if _, err := c.ExecContext(ctx, "BEGIN", nil); err != nil {
		return err
	}
	// BEGIN is deferred: the snapshot is taken by the first read.
	rows, err := c.QueryContext(ctx, "SELECT count(*) FROM sqlite_master", nil)
	if err != nil {
		c.ExecContext(context.Background(), "ROLLBACK", nil)
		return err
	}
	vals := make([]driver.Value, 1)
	err = rows.Next(vals)
	rows.Close()
	if err != nil {
		c.ExecContext(context.Background(), "ROLLBACK", nil)
	}
	return err
}

// IntegrityCheck runs PRAGMA integrity_check on c and fails unless it says
// ok.
func (Engine) IntegrityCheck(ctx context.Context, c *sql.Conn) error {
	rows, err := c.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("store: integrity check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("store: integrity check failed: %v", problems)
	}
	return nil
}
