package store

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"keyd/store/keyindex"
)

// An index snapshot is the key index written to a file, so that keyd starts
// in seconds however many keys it holds: reading a few hundred megabytes is
// much faster than reading and parsing ten million rows (20 to 30 s). It is
// written at start-up after a full load and again at a clean shutdown, and
// read at start-up instead of the database when it passes every check
// below; otherwise keyd loads the database as before and writes a new one.
//
// A snapshot is checked, not trusted:
//   - every section carries a CRC-32C, and the arrays are checked for
//     positions and text references that point outside them;
//   - it records the schema version and the last event its index reflects
//     (sequence, time and type), which must still be in the database as
//     recorded, so a snapshot of another database, of a restored backup or
//     from before a migration is refused, and so is one whose next event is
//     no longer kept;
//   - the events after it are applied (the same catch-up FollowChanges
//     does), and what changes without events is read afresh: every
//     account's credits and what limited keys spent when charges were made
//     that the snapshot does not reflect (see unloggedWrites), and the sites
//     holding slots;
//   - then the index must hold as many keys as the database (the
//     snapshot's, which matched the database when it was written, plus the
//     rows added since), and keys drawn at random from the database must be
//     found in the index as they are stored, with their accounts' credits.
//
// What validations recorded since the last flush (keyindex.Activity) is not
// part of a snapshot: it is flushed to the database before the shutdown
// snapshot.

// snapshotMagic starts every snapshot file; the number changes whenever the
// layout of the file or of a record changes (the record sizes are checked as
// well).
const snapshotMagic = "KEYDIX01"

// snapshotSampleKeys is how many keys, drawn at random from the database,
// must be found in a loaded snapshot as stored.
const snapshotSampleKeys = 64

// snapshotMeta is the JSON header of a snapshot file.
type snapshotMeta struct {
	Schema      int       `json:"schema"`
	FollowedSeq int64     `json:"followed_seq"`
	EventAtMs   int64     `json:"event_at_ms"` // of event FollowedSeq
	EventType   string    `json:"event_type"`
	WrittenAt   time.Time `json:"written_at"`
	// Keys is how many keys the index held, all the rows of the keys table
	// up to KeysMaxRowid (keys are never deleted): a later start expects as
	// many more as there are rows after it.
	Keys         int   `json:"keys"`
	KeysMaxRowid int64 `json:"keys_max_rowid"`
	// UnloggedWrites is the count of writes that changed credits or
	// spending without an event (see unloggedWrites) the snapshot reflects;
	// -1 when another process made some it does not.
	UnloggedWrites int64 `json:"unlogged_writes"`

	KeyRecordBytes     int `json:"key_record_bytes"`
	AccountRecordBytes int `json:"account_record_bytes"`

	// The index's part: plans, limits and its arrays' sections.
	keyindex.Snapshot
}

// castagnoli is the CRC-32C the header is checked with, as the sections are.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SaveIndexSnapshot writes the index to the snapshot file set with
// WithIndexSnapshot, replacing the previous one only once the new one is
// complete. Writes wait while it runs (validations do not): keyd calls it
// where no writes are expected, after loading and at shutdown.
func (db *DB) SaveIndexSnapshot(ctx context.Context) error {
	if db.snapshotPath == "" || db.skipIndex {
		return nil
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	// Changes other processes made are applied first, so that the
	// snapshot's catch-up at the next start is short.
	if _, err := db.followLocked(ctx); err != nil {
		return err
	}
	meta := snapshotMeta{FollowedSeq: db.followedSeq, WrittenAt: db.now().UTC()}
	meta.KeyRecordBytes, meta.AccountRecordBytes = keyindex.RecordSizes()
	var err error
	if meta.Schema, err = db.SchemaVersion(ctx); err != nil {
		return err
	}
	if meta.FollowedSeq > 0 {
		if err := db.r.QueryRowContext(ctx, `SELECT created_at_ms, type FROM events WHERE seq = ?`, meta.FollowedSeq).
			Scan(&meta.EventAtMs, &meta.EventType); err != nil {
			return fmt.Errorf("store: snapshot: read event %d: %w", meta.FollowedSeq, err)
		}
	}
	// Writes wait on writeMu, so the index and the database hold the same
	// keys now; a snapshot is written only when they do.
	var maxRowid sql.NullInt64
	if err := db.r.QueryRowContext(ctx, `SELECT count(*), max(rowid) FROM keys`).Scan(&meta.Keys, &maxRowid); err != nil {
		return err
	}
	meta.KeysMaxRowid = maxRowid.Int64
	meta.UnloggedWrites = db.unloggedSeen

	tmp, err := os.CreateTemp(filepath.Dir(db.snapshotPath), filepath.Base(db.snapshotPath)+".tmp*")
	if err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	w := bufio.NewWriterSize(tmp, 1<<20)
	err = db.index.WriteSnapshot(w, func(keys int, s keyindex.Snapshot) error {
		if meta.Keys != keys {
			return fmt.Errorf("store: snapshot: the index holds %d keys, the database %d", keys, meta.Keys)
		}
		meta.Snapshot = s
		header, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		var lengths [8]byte
		binary.LittleEndian.PutUint32(lengths[:4], uint32(len(header)))
		binary.LittleEndian.PutUint32(lengths[4:], crc32.Checksum(header, castagnoli))
		w.WriteString(snapshotMagic)
		w.Write(lengths[:])
		_, err = w.Write(header)
		return err
	})
	if err != nil {
		tmp.Close()
		return err
	}
	// No fsync: a snapshot torn by a crash fails its checks and keyd loads
	// the database instead.
	if err := errors.Join(w.Flush(), tmp.Close()); err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), db.snapshotPath); err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	return nil
}

// errSnapshotMissing is loadSnapshot's answer when there is no file.
var errSnapshotMissing = errors.New("no snapshot")

// loadSnapshot replaces the index with the snapshot's and brings it up to
// date with the database, or returns why the snapshot cannot be used (the
// caller then loads the database). writeMu must be held.
func (db *DB) loadSnapshot(ctx context.Context) (err error) {
	f, err := os.Open(db.snapshotPath)
	if errors.Is(err, os.ErrNotExist) {
		return errSnapshotMissing
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	meta, err := readSnapshotMeta(r)
	if err != nil {
		return err
	}
	if err := db.snapshotMatches(ctx, meta); err != nil {
		return err
	}

	ix, err := keyindex.ReadSnapshot(r, meta.Snapshot)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			ix.Release()
		}
	}()
	if err := db.refreshUnlogged(ctx, ix, meta); err != nil {
		return err
	}

	old, oldSeq := db.index, db.followedSeq
	db.index, db.followedSeq = ix, meta.FollowedSeq
	defer func() {
		if err != nil {
			db.index, db.followedSeq = old, oldSeq
		} else {
			old.Release()
		}
	}()
	caughtUp, err := db.catchUp(ctx)
	if err != nil {
		return err
	}
	nKeys, err := db.checkSample(ctx, ix, meta)
	if err != nil {
		return err
	}
	indexKeys, accounts := ix.Counts()
	db.loaded = LoadStats{DatabaseKeys: nKeys, IndexKeys: indexKeys, Accounts: accounts,
		FromSnapshot: true, CaughtUpEvents: caughtUp}
	return nil
}

func readSnapshotMeta(r io.Reader) (snapshotMeta, error) {
	var meta snapshotMeta
	var start [len(snapshotMagic) + 8]byte
	if _, err := io.ReadFull(r, start[:]); err != nil {
		return meta, fmt.Errorf("snapshot: header: %w", err)
	}
	if string(start[:len(snapshotMagic)]) != snapshotMagic {
		return meta, errors.New("snapshot: not a snapshot of this version")
	}
	n := binary.LittleEndian.Uint32(start[len(snapshotMagic):])
	if n > 1<<30 {
		return meta, errors.New("snapshot: header too large")
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(r, header); err != nil {
		return meta, fmt.Errorf("snapshot: header: %w", err)
	}
	if crc32.Checksum(header, castagnoli) != binary.LittleEndian.Uint32(start[len(snapshotMagic)+4:]) {
		return meta, errors.New("snapshot: header checksum does not match")
	}
	if err := json.Unmarshal(header, &meta); err != nil {
		return meta, fmt.Errorf("snapshot: header: %w", err)
	}
	if keyBytes, accountBytes := keyindex.RecordSizes(); meta.KeyRecordBytes != keyBytes || meta.AccountRecordBytes != accountBytes {
		return meta, errors.New("snapshot: written by a build with other record layouts")
	}
	return meta, nil
}

// snapshotMatches checks that the snapshot was taken of this database, at a
// point its event log still holds.
func (db *DB) snapshotMatches(ctx context.Context, meta snapshotMeta) error {
	schema, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if schema != meta.Schema {
		return fmt.Errorf("snapshot: schema version %d, database %d", meta.Schema, schema)
	}
	// The events after the snapshot must all be there to be applied: the
	// one right after it must be, when any was written since (the
	// sequence counts every event ever written, and events are contiguous
	// and would only ever go oldest first).
	lastWritten, err := db.eng.LastEventWritten(ctx, db.r)
	if err != nil {
		return err
	}
	if lastWritten < meta.FollowedSeq {
		return fmt.Errorf("snapshot: it reflects event %d, the database has written %d (another database, or a restored backup)",
			meta.FollowedSeq, lastWritten)
	}
	if lastWritten > meta.FollowedSeq {
		var next int
		if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE seq = ?`, meta.FollowedSeq+1).Scan(&next); err != nil {
			return err
		}
		if next == 0 {
			return fmt.Errorf("snapshot: event %d, the first after it, is no longer in the database", meta.FollowedSeq+1)
		}
	}
	if meta.FollowedSeq == 0 {
		return nil
	}
	var (
		at  int64
		typ string
	)
	err = db.r.QueryRowContext(ctx, `SELECT created_at_ms, type FROM events WHERE seq = ?`, meta.FollowedSeq).Scan(&at, &typ)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("snapshot: event %d is not in the database (another database, or a restored backup)", meta.FollowedSeq)
	}
	if err != nil {
		return err
	}
	if at != meta.EventAtMs || typ != meta.EventType {
		return fmt.Errorf("snapshot: event %d differs in the database (another database, or a restored backup)", meta.FollowedSeq)
	}
	return nil
}

// unloggedWrites is how many write transactions changed credits or what a
// key spent without an event (charges). Every other change to what the index
// holds writes an event, which a snapshot's catch-up applies; these are the
// changes a snapshot would otherwise miss when a keyd that charged was killed
// before it could write its own.
func unloggedWrites(ctx context.Context, q queryer) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT count FROM unlogged_writes`).Scan(&n)
	return n, err
}

// sawUnloggedWrite notes that this process's write brought the count of
// unlogged writes to n. When the count was not where the index left it,
// another process (a second keyd on the same database) charged too, and
// its charges are not in this index: a snapshot of it must not vouch for
// credits. writeMu must be held.
func (db *DB) sawUnloggedWrite(n int64) {
	if db.unloggedSeen >= 0 && n == db.unloggedSeen+1 {
		db.unloggedSeen = n
	} else {
		db.unloggedSeen = -1
	}
}

// refreshUnlogged reads what changed without an event since the snapshot,
// and so without a catch-up, into ix. When charges were made after it
// (unloggedWrites moved on: a keyd that charged was killed), every
// account's credits and what limited keys spent are read afresh (two
// seconds at ten million keys); otherwise the snapshot's are the database's.
// The sites holding activation slots and the plans are read in any case:
// they cost next to nothing.
func (db *DB) refreshUnlogged(ctx context.Context, ix *keyindex.Index, meta snapshotMeta) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	plans, err := listPlans(ctx, tx)
	if err != nil {
		return err
	}
	ix.Apply(indexPlans(plans), nil)
	unlogged, err := unloggedWrites(ctx, tx)
	if err != nil {
		return err
	}
	if unlogged != meta.UnloggedWrites {
		if err := readCreditsAndSpending(ctx, tx, ix); err != nil {
			return err
		}
	}
	db.unloggedSeen = unlogged
	return db.loadSites(ctx, tx)
}

// readCreditsAndSpending reads every account's credits and what every
// limited key spent into ix.
func readCreditsAndSpending(ctx context.Context, tx *sql.Tx, ix *keyindex.Index) error {
	ix.ResetSpent() // nothing spent yet, as keySpendColumns reads it, but what key_spend says
	return readPools(ctx, tx, ix, creditsQuery, spentQuery, nil)
}

// checkSample compares the index, brought up to date, with the database: the
// same number of keys (those of the snapshot and the rows added after it),
// and keys drawn at random found as stored, with their accounts' credits.
// It returns the database's key count.
func (db *DB) checkSample(ctx context.Context, ix *keyindex.Index, meta snapshotMeta) (int, error) {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var (
		added  int
		maxRow sql.NullInt64
	)
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM keys WHERE rowid > ?`, meta.KeysMaxRowid).Scan(&added); err != nil {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT max(rowid) FROM keys`).Scan(&maxRow); err != nil {
		return 0, err
	}
	nKeys := meta.Keys + added
	if indexKeys, _ := ix.Counts(); nKeys != indexKeys {
		return 0, fmt.Errorf("snapshot: the index holds %d keys after catching up, the database %d", indexKeys, nKeys)
	}
	if !maxRow.Valid {
		return nKeys, nil
	}
	st, err := tx.PrepareContext(ctx, `SELECT k.hash, k.id, k.status, a.credits FROM keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.rowid >= ? ORDER BY k.rowid LIMIT 1`)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	for range snapshotSampleKeys {
		var (
			hash       []byte
			id, status string
			credits    int64
		)
		if err := st.QueryRowContext(ctx, rand.Int64N(maxRow.Int64)+1).Scan(&hash, &id, &status, &credits); err != nil {
			return 0, err
		}
		var h [32]byte
		if len(hash) != len(h) {
			return 0, fmt.Errorf("snapshot: key %s has a malformed hash in the database", id)
		}
		copy(h[:], hash)
		e, found := ix.Lookup(&h)
		if !found || e.KeyID != id || e.Status != status || e.Credits != credits {
			return 0, fmt.Errorf("snapshot: key %s differs from the database", id)
		}
	}
	return nKeys, nil
}
