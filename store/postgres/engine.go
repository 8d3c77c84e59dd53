package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Engine is PostgreSQL as the store uses it (see the store's engine
// interface): database/sql connections through pgx, which take the store's
// SQL with its ? placeholders (rewritten to $n on the way, see rebind), the
// migrations of this package, what PostgreSQL's errors mean, and how
// replicas on one database take turns to write and hear of each other's
// changes.
type Engine struct{}

// defaultConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout.
const defaultConnectTimeout = 5 * time.Second

// Open connects to the database at dsn, a postgres:// URL or key=value
// string as pgx's pool reads it: sslmode and the other connection settings,
// and pool_max_conns, pool_max_conn_lifetime and pool_max_conn_idle_time
// for each of the two pools it opens, one for writes and one for reads.
func (Engine) Open(dsn string) (writer, readers *sql.DB, err error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without connect_timeout a server that drops packets holds each
		// request for the system's TCP timeout, minutes.
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	open := func() *sql.DB {
		db := sql.OpenDB(rebindingConnector{stdlib.GetConnector(*cfg.ConnConfig)})
		db.SetMaxOpenConns(int(cfg.MaxConns))
		db.SetMaxIdleConns(int(cfg.MaxConns))
		db.SetConnMaxLifetime(cfg.MaxConnLifetime)
		db.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
		return db
	}
	return open(), open(), nil
}

// Migrations are the schema's versions, numbered as SQLite's.
func (Engine) Migrations() fs.FS { return migrationFiles }

// StorageFailure reports whether err is PostgreSQL failing because of where
// the database lives rather than what was asked: the server cannot be
// reached or went away (class 08, a failed connection), it is short of
// disk or memory (53), shutting down or not yet accepting connections
// (57P), failing its own I/O (58), or read-only (25006, a standby).
func (Engine) StorageFailure(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "53"),
			strings.HasPrefix(pgErr.Code, "57P"), strings.HasPrefix(pgErr.Code, "58"), pgErr.Code == "25006":
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr) || errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err)
}

// UniqueViolation reports whether err is a unique constraint of column
// (table.column) refusing a write, read from PostgreSQL's report: the table,
// and the columns in "Key (a, b)=(...) already exists.".
func (Engine) UniqueViolation(err error, column string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return false
	}
	table, col, ok := strings.Cut(column, ".")
	if !ok || pgErr.TableName != table {
		return false
	}
	cols, ok := strings.CutPrefix(pgErr.Detail, "Key (")
	if !ok {
		return false
	}
	cols, _, _ = strings.Cut(cols, ")")
	for c := range strings.SplitSeq(cols, ",") {
		if strings.TrimSpace(c) == col {
			return true
		}
	}
	return false
}

// LastEventWritten is the last value the sequence of events.seq handed out,
// whether or not that event is still kept (or was committed: a sequence
// value is not given back when its transaction rolls back).
func (Engine) LastEventWritten(ctx context.Context, readers *sql.DB) (int64, error) {
	var seq sql.NullInt64
	err := readers.QueryRowContext(ctx, `SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'seq'))`).Scan(&seq)
	return seq.Int64, err
}

// errNoBackup is the answer of the SQLite-only operations.
var errNoBackup = errors.New("keyd backup copies SQLite databases; back PostgreSQL up with pg_dump or your provider's backups")

// BackupInto is SQLite's: PostgreSQL has its own tools.
func (Engine) BackupInto(context.Context, *sql.DB, string) error { return errNoBackup }

// IntegrityCheck is SQLite's: PostgreSQL checks its own (amcheck).
func (Engine) IntegrityCheck(context.Context, *sql.Conn) error { return errNoBackup }

// rebindingConnector hands out pgx connections that rewrite the store's ?
// placeholders, written for SQLite, into PostgreSQL's $n.
type rebindingConnector struct{ driver.Connector }

func (c rebindingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rebindingConn{conn.(*stdlib.Conn)}, nil
}

// rebindingConn is a pgx connection whose statements go through rebind;
// every other method (transactions, pings, session resets, value checks)
// is pgx's own, promoted.
type rebindingConn struct{ *stdlib.Conn }

// CheckNamedValue sends a Go bool as the integer 1 or 0: the schema keeps
// flags in integer columns, as SQLite does, and the store's SQL tests them
// with <> 0. It sends a string PostgreSQL's text cannot hold (a NUL byte,
// invalid UTF-8) with those bytes replaced by U+FFFD, see textArg.
func (c *rebindingConn) CheckNamedValue(nv *driver.NamedValue) error {
	switch v := nv.Value.(type) {
	case bool:
		nv.Value = int64(0)
		if v {
			nv.Value = int64(1)
		}
		return nil
	case string:
		nv.Value = textArg(v)
	}
	return c.Conn.CheckNamedValue(nv)
}

// textArg is s as PostgreSQL's text can hold it: each NUL byte and each
// byte of invalid UTF-8 replaced by U+FFFD. SQLite keeps and compares such
// bytes, so an id or cursor from a request that holds them names no row
// there; here the query would fail instead. No id keyd makes holds U+FFFD,
// so the replaced one still names no row, and text the request layer
// passed on is kept as readably as JSON decoding keeps invalid UTF-8.
func textArg(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func (c *rebindingConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(rebind(query))
}

func (c *rebindingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c *rebindingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

func (c *rebindingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

// rebind rewrites SQLite's placeholders into PostgreSQL's: ?N becomes $N,
// and each bare ? the next number. Text in quotes ('...', "...") and
// comments is left as it is.
func rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	next := 0
	for i := 0; i < len(query); i++ {
		switch c := query[i]; {
		case c == '\'' || c == '"':
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end])
			i += end - 1
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			end := strings.Index(query[i:], "*/")
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case c == '?':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			if j > i+1 {
				b.WriteByte('$')
				b.WriteString(query[i+1 : j])
				i = j - 1
			} else {
				next++
				fmt.Fprintf(&b, "$%d", next)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// BeginBulkLoad has nothing to set on PostgreSQL: the seed's batches of
// many rows per transaction are what make it fast there.
func (Engine) BeginBulkLoad(context.Context, *sql.DB) (func(), error) { return func() {}, nil }

// writeLock is the advisory lock every write transaction takes first (the
// migration lock's number plus one).
const writeLock = migrationLock + 1

// BeginWrite makes tx wait for every other write transaction on the
// database, from any replica, to end: writes are serialised across the
// cluster as SQLite serialises them on one machine. The rules that count
// before they insert (alias and subaccount limits, site slots, idempotency
// keys) hold as they do there, and events.seq, handed out under the lock,
// commits in order, so that following the event log by sequence never
// skips an event that commits late.
func (Engine) BeginWrite(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", writeLock)
	return err
}

// changesChannel is the channel of the notifications ListenChanges waits
// for.
const changesChannel = "keyd_changes"

// AnnounceChanges notifies every listening replica of payload when tx
// commits.
func (Engine) AnnounceChanges(ctx context.Context, tx *sql.Tx, payload string) error {
	_, err := tx.ExecContext(ctx, "SELECT pg_notify('"+changesChannel+"', ?)", payload)
	return err
}

// Shared reports that several keyd processes may serve one PostgreSQL
// database at once.
func (Engine) Shared() bool { return true }

// ListenChanges calls heard with the payload of every announcement, on a
// connection of its own, until ctx ends. A lost connection is opened again
// after retryAfter; connected is called after each (re)connection, as
// announcements made meanwhile are lost.
func (Engine) ListenChanges(ctx context.Context, dsn string, heard func(string), connected func()) {
	const retryAfter = time.Second
	for ctx.Err() == nil {
		listenChanges(ctx, dsn, heard, connected)
		select {
		case <-ctx.Done():
		case <-time.After(retryAfter):
		}
	}
}

func listenChanges(ctx context.Context, dsn string, heard func(string), connected func()) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		heard(n.Payload)
	}
}
