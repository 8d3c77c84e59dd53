// Package sqlite is keyd's embedded database engine: SQLite through
// mattn/go-sqlite3. It holds what is particular to SQLite under the store:
// how connections are opened (one writer, pooled readers, the pragmas), the
// schema's migrations, what SQLite's errors mean, and the online backup.
// The store's operations run on the connections it opens; nothing above
// the store imports it.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// Engine is SQLite as the store uses it (see store's engine).
type Engine struct{}

// migrations are the schema's versions, applied in the order of their
// numbers (see store's migrate).
//
//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the schema's versions.
func (Engine) Migrations() fs.FS { return migrations }

// The writer connection checkpoints the WAL (copies it back into the
// database file) once it passes WriterCheckpointPages pages instead of
// SQLite's 1,000. A checkpoint runs inside the commit that crosses the mark,
// and a charge dirties its account's page, the accounts being spread over
// the file: at 1,000 pages every 30 or so batches of charges waited for a
// checkpoint. With ten times the room a page charged again before the next
// checkpoint is copied back once, and the syncs that end a checkpoint come
// ten times less often. Measured with 64 clients charging the accounts of a
// million keys: p99 halved (30-35 ms to 14-17 ms) and 10-15% more charges
// per second, for a WAL of up to 40 MB.
const (
	writerDriver          = "sqlite3-keyd-writer"
	WriterCheckpointPages = 10_000
)

func init() {
	sql.Register(writerDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", WriterCheckpointPages), nil)
		return err
	}})
}

// Open opens (creating if needed) the database file at path: the writer, a
// single connection (SQLite has one writer anyway) whose transactions take
// the write lock when they begin, and a pool of read-only readers.
func (Engine) Open(path string) (writer, readers *sql.DB, err error) {
	if path == "" {
		return nil, nil, errors.New("store: empty database path")
	}
	// Create the file ourselves so it (and the WAL and shared-memory files,
	// which SQLite creates with the database file's mode) is private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	f.Close()

	// Pragmas go in the DSN so that every pooled connection gets them.
	// _mutex=no opens connections without SQLite's per-connection mutex,
	// which database/sql makes redundant: it never uses a connection, or a
	// statement of one, from two goroutines at once, which is all SQLite's
	// multi-thread mode asks. The mutex was taken for every column of every
	// row read: without it, loading a million keys at start-up takes about
	// a sixth less time.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_foreign_keys=on&_busy_timeout=5000&_journal_mode=WAL&_synchronous=FULL&_mutex=no"
	writer, err = sql.Open(writerDriver, base+"&_txlock=immediate")
	if err != nil {
		return nil, nil, err
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)
	readers, err = sql.Open("sqlite3", base+"&_query_only=on")
	if err != nil {
		writer.Close()
		return nil, nil, err
	}
	readers.SetMaxOpenConns(8)
	return writer, readers, nil
}

// LastEventWritten is the sequence of the last event ever written, kept by
// SQLite for the AUTOINCREMENT of events.seq even when the event is gone.
func (Engine) LastEventWritten(ctx context.Context, readers *sql.DB) (int64, error) {
	var seq int64
	err := readers.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'events'`).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}

// StorageFailure reports whether err is SQLite failing because of where the
// database lives, not because of what was asked: a full disk (SQLITE_FULL),
// an I/O failure (SQLITE_IOERR and its extended codes), a read-only database
// (SQLITE_READONLY...) or a file it cannot open (SQLITE_CANTOPEN, e.g. the
// WAL in a directory gone read-only).
func (Engine) StorageFailure(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrReadonly, sqlite3.ErrCantOpen:
		return true
	}
	return false
}

// UniqueViolation reports whether err is a UNIQUE constraint refusing a
// write on column (SQLite names it table.column in its message).
func (Engine) UniqueViolation(err error, column string) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique &&
		strings.Contains(se.Error(), column)
}

// BeginWrite has nothing to do: the one writer connection's transactions
// take SQLite's write lock when they begin.
func (Engine) BeginWrite(context.Context, *sql.Tx) error { return nil }

// AnnounceChanges has no one to tell: other processes on the file poll.
func (Engine) AnnounceChanges(context.Context, *sql.Tx, string) error { return nil }

// Shared reports that a SQLite file is served by one keyd (operator
// commands beside it only poll for changes).
func (Engine) Shared() bool { return false }

// ListenChanges returns at once: SQLite has no notifications, and the
// follower's poll is all there is.
func (Engine) ListenChanges(context.Context, string, func(string), func()) {}
