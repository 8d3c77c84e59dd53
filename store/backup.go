package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup copies the database into dest, a new file created with mode 0600,
// through SQLite's online backup API, while keyd keeps serving. The copy is
// one consistent snapshot: it is read inside a single read transaction,
// which in WAL mode never blocks writers (their changes go on into the WAL
// and are simply not part of the copy). It is made page by page in steps,
// written to dest+".partial", checked with PRAGMA integrity_check, synced,
// and only then linked to dest, so dest is never a half-written file. The
// copy is in rollback-journal mode, a single self-contained file; keyd puts
// it back into WAL mode when it opens it.
//
// Webhook signing secrets in the copy are sealed with the secret key, which
// is not in the database (see KeyFilePath): a backup needs it too.
func (db *DB) Backup(ctx context.Context, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("store: backup: %s already exists", dest)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: backup: %w", err)
	}
	tmp := dest + ".partial"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: backup: %s exists: another backup is running, or one was interrupted (then remove it)", tmp)
	}
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	f.Close()
	done := false
	defer func() {
		if !done {
			for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
				os.Remove(tmp + suffix)
			}
		}
	}()

	if err := db.eng.BackupInto(ctx, db.r, tmp); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	// A hard link, unlike a rename, refuses to replace a file that
	// appeared at dest in the meantime.
	if err := os.Link(tmp, dest); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	done = true
	os.Remove(tmp)
	return syncFile(filepath.Dir(dest))
}

// IntegrityCheck runs SQLite's PRAGMA integrity_check on the database.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	c, err := db.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return db.eng.IntegrityCheck(ctx, c)
}

// syncFile flushes a file or directory to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
