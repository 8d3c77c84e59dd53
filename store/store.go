// Package store holds keyd's domain types, the rules that must hold inside one
// transaction, and the SQL of its operations, written for both of its
// engines: SQLite (store/sqlite), the default, and PostgreSQL
// (store/postgres), on which several keyd processes may serve one database
// as replicas (replicas.go). It keeps an in-memory index of every key
// (store/keyindex) so that validation never reads the database.
package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"keyd/store/keyindex"
	"keyd/store/migrate"
)

// DB is keyd's store: one writer connection, a pool of readers, and the
// in-memory key index that is updated after every committed write.
type DB struct {
	path string
	eng  engine  // the database technology (store/sqlite)
	w    *sql.DB // exactly one connection: SQLite has one writer anyway
	r    *sql.DB // pooled readers

	// writeMu serialises write transactions together with the index update
	// that follows their commit, so the index sees changes in commit order.
	writeMu sync.Mutex

	now          func() time.Time
	snapshotPath string // see WithIndexSnapshot
	skipIndex    bool
	skipMigrate  bool
	scopes       Catalogue

	index    *keyindex.Index
	loaded   LoadStats
	activity *activity
	spender  *spender
	sites    *activeSites // the sites holding slots of keys with max_sites

	// followedSeq is the last event whose changes the index reflects, for
	// FollowChanges; guarded by writeMu.
	followedSeq int64
	// charges is what the follower heard charged on other replicas.
	charges chargesHeard
	// unloggedSeen is the count of unlogged writes (see unloggedWrites)
	// whose changes the index reflects, or -1 when another process made
	// some it does not; guarded by writeMu.
	unloggedSeen int64

	replica replicaState // this process among the replicas, see replicas.go

	webhookState // secrets and change notifications, see webhooks.go
}

// Option configures Open.
type Option func(*DB)

// WithClock sets the clock the store uses for every timestamp and expiry
// decision; tests pass a fake one.
func WithClock(now func() time.Time) Option {
	return func(db *DB) { db.now = now }
}

// WithScopes sets the operator's scope catalogue; without one any
// well-formed scope name is accepted.
func WithScopes(c Catalogue) Option {
	return func(db *DB) { db.scopes = c }
}

// WithIndexSnapshot keeps the key index in a snapshot file at path, read at
// start-up instead of the database when it passes its checks (see
// snapshot.go) and written after a full load and by SaveIndexSnapshot.
func WithIndexSnapshot(path string) Option {
	return func(db *DB) { db.snapshotPath = path }
}

// WithoutIndex skips loading the key index: for operator commands that change
// the database and exit, and must not pay for loading every key.
func WithoutIndex() Option {
	return func(db *DB) { db.skipIndex = true }
}

// WithoutMigrations opens the database as it is, applying no migration:
// for keyd backup, which must copy a database before an upgrade changes it.
func WithoutMigrations() Option {
	return func(db *DB) { db.skipMigrate = true }
}

// Open opens (creating if needed) the SQLite database at path, applies
// pending migrations and loads the key index.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	db, err := openFile(path, opts...)
	if err != nil {
		return nil, err
	}
	if !db.skipMigrate {
		if _, err := db.migrate(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	if !db.skipIndex {
		if err := db.loadIndex(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

func openFile(path string, opts ...Option) (*DB, error) {
	eng := engineFor(path)
	w, r, err := eng.Open(path)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, eng: eng, w: w, r: r, now: time.Now, index: keyindex.New(), activity: newActivity(), spender: newSpender(),
		sites: newActiveSites(), unloggedSeen: -1}
	db.replica.settings = DefaultReplicaSettings
	for _, o := range opts {
		o(db)
	}
	go db.runSpender()
	return db, nil
}

// Close lets queued charges commit, then closes the database connections.
// Callers flush activity first. The key index stays readable (its memory is
// not unmapped), so a lookup racing with shutdown never reads freed memory.
func (db *DB) Close() error {
	db.stopSpender()
	return errors.Join(db.r.Close(), db.w.Close())
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Now is the store's clock.
func (db *DB) Now() time.Time { return db.now() }

// Ping checks that the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.r.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Migrate applies every embedded migration not yet recorded, each in its own
// transaction, and reports how many it applied. Open calls it too.
func (db *DB) Migrate(ctx context.Context) (int, error) { return db.migrate(ctx) }

func (db *DB) migrate(ctx context.Context) (int, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.eng.Migrate(ctx, db.w, db.now())
}

// LatestSchemaVersion is the highest migration this build knows (the
// engines number theirs alike).
func LatestSchemaVersion() int { return migrate.Latest(engineFor("").Migrations()) }

// SchemaVersion is the highest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.r.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v)
	return int(v.Int64), err
}
