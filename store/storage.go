package store

import (
	"errors"
	"fmt"
)

// storageError marks err as ErrStorageUnavailable when the engine says the
// database failed because of where it lives (see engine.StorageFailure).
func (db *DB) storageError(err error) error {
	if err == nil || errors.Is(err, ErrStorageUnavailable) || !db.eng.StorageFailure(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStorageUnavailable, err)
}
