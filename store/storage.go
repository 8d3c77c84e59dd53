package store

import (
	"errors"
	"fmt"
)

// ErrStorageUnavailable is a write the database could not take because of
// where it lives, not because of what was asked: the disk is full, the file
// or its directory is read-only, or the operating system failed the I/O.
// Nothing of the change was kept, and the same request may succeed once
// space returns; the in-memory key index still answers validations. The
// SQLite error is wrapped alongside it for the log.
var ErrStorageUnavailable = errors.New("store: storage unavailable")

// storageError marks err as ErrStorageUnavailable when the engine says the
// database failed because of where it lives (see engine.StorageFailure).
func (db *DB) storageError(err error) error {
	if err == nil || errors.Is(err, ErrStorageUnavailable) || !db.eng.StorageFailure(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStorageUnavailable, err)
}
