package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"keyd/store"
)

// runBackup copies the database with SQLite's online backup API, safe while
// keyd serves, and the secret key file beside it.
func runBackup(ctx context.Context, e env, args []string) error {
	flags := newFlags(e, "backup", "backup --to FILE [--db FILE] [--no-key]")
	dbPath := dbFlag(e, flags)
	to := flags.String("to", "", "the backup file to create (it must not exist); the secret key is copied to FILE.key")
	noKey := flags.Bool("no-key", false, "do not copy the secret key file (<db>.key) next to the backup")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if *to == "" {
		return usagef("keyd backup needs --to FILE")
	}
	if err := mustExist(*dbPath); err != nil {
		return err
	}
	// No migration: a backup taken before an upgrade must be of the
	// database as the old version left it.
	db, err := store.Open(ctx, *dbPath, store.WithoutIndex(), store.WithoutMigrations())
	if err != nil {
		return err
	}
	defer db.Close()
	version, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if err := db.Backup(ctx, *to); err != nil {
		return err
	}
	size := int64(0)
	if fi, err := os.Stat(*to); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s (%d bytes, schema version %d, integrity ok)\n", *dbPath, *to, size, version)

	// Webhook signing secrets are sealed with a key that is not in the
	// database: without it the backup's secrets cannot be read.
	if e.getenv("KEYD_SECRET_KEY") != "" {
		fmt.Fprintln(e.stdout, "webhook secrets are sealed with KEYD_SECRET_KEY: keep its value with this backup, it is not in it")
		return nil
	}
	keyFile := store.KeyFilePath(*dbPath)
	if *noKey {
		fmt.Fprintf(e.stdout, "the secret key %s was not copied (--no-key): keep it safe, without it the backup's webhook secrets cannot be read\n", keyFile)
		return nil
	}
	switch err := copyPrivate(keyFile, *to+".key"); {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(e.stdout, "no secret key file %s: if webhook secrets were sealed with KEYD_SECRET_KEY, keep that value with this backup\n", keyFile)
	case err != nil:
		return fmt.Errorf("backup: copy the secret key: %w", err)
	default:
		fmt.Fprintf(e.stdout, "copied the secret key %s to %s.key: webhook secrets cannot be read without it; store it as carefully as the backup\n", keyFile, *to)
	}
	return nil
}

// copyPrivate copies src to a new file dst with mode 0600.
func copyPrivate(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return err
	}
	return out.Sync()
}
