package store

import (
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// ErrStorageUnavailable is a write the database could not take because of
// where it lives, not because of what was asked: the disk is full, the file
// or its directory is read-only, or the operating system failed the I/O.
// Nothing of the change was kept, and the same request may succeed once
// space returns; the in-memory key index still answers validations. The
// SQLite error is wrapped alongside it for the log.
var ErrStorageUnavailable = errors.New("store: storage unavailable")

// storageError marks err as ErrStorageUnavailable when SQLite reports a
// full disk (SQLITE_FULL), an I/O failure (SQLITE_IOERR and its extended
// codes), a read-only database (SQLITE_READONLY...) or a file it cannot
// open (SQLITE_CANTOPEN, e.g. the WAL in a directory gone read-only).
func storageError(err error) error {
	if err == nil || errors.Is(err, ErrStorageUnavailable) {
		return err
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrReadonly, sqlite3.ErrCantOpen:
		return fmt.Errorf("%w: %w", ErrStorageUnavailable, err)
	}
	return err
}
