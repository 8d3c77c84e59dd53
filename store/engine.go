package store

import (
	"context"
	"database/sql"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"keyd/store/postgres"
	"keyd/store/sqlite"
)

// engine is what the store needs of one database technology, and all it
// knows of it: every operation of the store runs its SQL on the
// database/sql connections the engine opens. store/sqlite and
// store/postgres implement it, nothing else.
type engine interface {
	// Open connects to the database at dsn, creating it if needed: the
	// connections writes go through, and the pool reads use.
	Open(dsn string) (writer, readers *sql.DB, err error)
	// Migrations are the schema's versions: files migrations/NNNN_*.sql,
	// each applied once, in the order of their numbers.
	Migrations() fs.FS
	// Migrate applies the migrations not yet applied, each in its own
	// transaction and once even when several processes start together,
	// and reports how many it applied; now is recorded as when.
	Migrate(ctx context.Context, writer *sql.DB, now time.Time) (int, error)
	// BeginWrite starts a write transaction's work: it returns once no
	// other write transaction on the database, from any process, runs.
	BeginWrite(ctx context.Context, tx *sql.Tx) error
	// AnnounceChanges tells the processes on the database, when tx
	// commits, what it changed (see ListenChanges): payload is the store's
	// own, at most maxAnnouncement bytes.
	AnnounceChanges(ctx context.Context, tx *sql.Tx, payload string) error
	// ListenChanges calls heard with each announcement's payload, and
	// connected after each (re)connection, as announcements made while it
	// was not connected are lost, until ctx ends; an engine without
	// notifications returns at once.
	ListenChanges(ctx context.Context, dsn string, heard func(payload string), connected func())
	// Shared reports whether several keyd processes serve the database at
	// once, as replicas (see replicas.go).
	Shared() bool
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
	// BeginBulkLoad sets the writer up for loading many rows (keyd seed),
	// trading durability for speed, until the function returned puts it
	// back.
	BeginBulkLoad(ctx context.Context, writer *sql.DB) (end func(), err error)
	// BackupInto copies the database, one consistent state of it, into a
	// new file at path while it serves, and checks the copy.
	BackupInto(ctx context.Context, readers *sql.DB, path string) error
	// IntegrityCheck checks the database's own structures.
	IntegrityCheck(ctx context.Context, c *sql.Conn) error
}

// engineFor is the engine of the database named by dsn: PostgreSQL for a
// postgres:// or postgresql:// URL, SQLite for anything else (a file path).
func engineFor(dsn string) engine {
	if IsPostgresURL(dsn) {
		return postgres.Engine{}
	}
	return sqlite.Engine{}
}

// IsPostgresURL reports whether dsn names a PostgreSQL database rather than
// a SQLite file: a postgres:// or postgresql:// URL.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// RedactedDSN is how a database is named in messages: a PostgreSQL URL
// without its password, or the SQLite file's path.
func RedactedDSN(dsn string) string {
	if !IsPostgresURL(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "the PostgreSQL database"
	}
	return u.Redacted()
}

// OpenSQL opens the database at dsn as plain database/sql connections of
// its engine, which take the store's SQL (? placeholders and all), for
// tools and tests that read or write rows directly. It applies no
// migration and loads no index.
func OpenSQL(dsn string) (*sql.DB, error) {
	w, r, err := engineFor(dsn).Open(dsn)
	if err != nil {
		return nil, err
	}
	r.Close()
	return w, nil
}
