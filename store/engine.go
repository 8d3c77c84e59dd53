package store

import (
	"context"
	"database/sql"
	"io/fs"

	"keyd/store/sqlite"
)

// engine is what the store needs of one database technology, and all it
// knows of it: every operation of the store runs its SQL on the
// database/sql connections the engine opens. store/sqlite is the engine
// keyd runs on; a second one (PostgreSQL) goes beside it and implements
// this, nothing else.
type engine interface {
	// Open connects to the database at dsn, creating it if needed: the
	// connections writes go through, and the pool reads use.
	Open(dsn string) (writer, readers *sql.DB, err error)
	// Migrations are the schema's versions: files migrations/NNNN_*.sql,
	// each applied once, in the order of their numbers.
	Migrations() fs.FS
	// StorageFailure reports whether err is the database failing because
	// of where it lives (a full disk, a read-only file, an I/O error), not
	// because of what was asked.
	StorageFailure(err error) bool
	// UniqueViolation reports whether err is a unique constraint on column
	// (table.column) refusing a write.
	UniqueViolation(err error, column string) bool
	// LastEventWritten is the sequence of the last event ever written,
	// whether or not it is still kept; 0 before the first.
	LastEventWritten(ctx context.Context, readers *sql.DB) (int64, error)
	// BackupInto copies the database, one consistent state of it, into a
	// new file at path while it serves, and checks the copy.
	BackupInto(ctx context.Context, readers *sql.DB, path string) error
	// IntegrityCheck checks the database's own structures.
	IntegrityCheck(ctx context.Context, c *sql.Conn) error
}

// engineFor is the engine of the database named by dsn: SQLite, the one
// keyd runs on, for a file path.
func engineFor(string) engine { return sqlite.Engine{} }
