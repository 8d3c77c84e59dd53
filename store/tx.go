package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"keyd/store/keyindex"
)

// Tx is a write transaction. Every change made through it that concerns an
// account appends an event, and the accounts it touched are re-read into the
// index right after the commit, in commit order.
type Tx struct {
	tx    *sql.Tx
	eng   engine
	now   time.Time // the transaction's time, in whole seconds as stored
	exact time.Time // the same instant before truncation

	touched      map[string]bool // account ids to refresh in the index
	plansChanged bool
	notify       bool                  // tell Changes() listeners after commit
	lastSeq      int64                 // the sequence of the last event written
	credits      map[string]int64      // new pool sizes, for accounts not refreshed whole
	keySpent     map[uint32]spendState // what limited keys spent, by index position
	stmts        map[string]*sql.Stmt
	// priorSeq is, on a shared engine, the last event in the log before
	// this transaction's first (see followOwn).
	priorSeq int64
}

// prepared returns query prepared once for this transaction: statements
// that run once per item of a batch are parsed once per batch.
func (t *Tx) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if t.stmts == nil {
		t.stmts = map[string]*sql.Stmt{}
	}
	t.stmts[query] = st
	return st, nil
}

// setCredits records an account's new pool size for the index, which is
// cheaper than re-reading the whole account after every charge.
func (t *Tx) setCredits(accountID string, credits int64) { t.credits[accountID] = credits }

// write runs fn in a write transaction and, once it has committed, brings the
// index up to date with what it changed. Holding writeMu across both keeps
// index updates in commit order.
//
// A write that fails because of the disk or the file (full, read-only, I/O)
// returns an error matching ErrStorageUnavailable.
//
// With replicas (see replicas.go), a write that changed anything returns
// once every live replica has applied it too, or after the wait they are
// given.
func (db *DB) write(ctx context.Context, fn func(*Tx) error) error {
	lastSeq, err := db.writeTx(ctx, fn)
	if err != nil {
		return db.storageError(err)
	}
	db.awaitReplicas(ctx, lastSeq)
	return nil
}

// writeTx is write without waiting for replicas; it returns the sequence
// of the last event written, 0 for none.
func (db *DB) writeTx(ctx context.Context, fn func(*Tx) error) (int64, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	sqlTx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: begin: %w", err)
	}
	if err := db.eng.BeginWrite(ctx, sqlTx); err != nil {
		sqlTx.Rollback()
		return 0, fmt.Errorf("store: begin: %w", err)
	}
	exact := db.now().UTC()
	t := &Tx{tx: sqlTx, eng: db.eng, now: exact.Truncate(time.Second), exact: exact, touched: map[string]bool{}, credits: map[string]int64{},
		keySpent: map[uint32]spendState{}}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return 0, err
	}
	unlogged := int64(-1)
	if len(t.credits) > 0 || len(t.keySpent) > 0 {
		// Credits or spending changed without an event: see unloggedWrites.
		if err := sqlTx.QueryRowContext(ctx, `UPDATE unlogged_writes SET count = count + 1 RETURNING count`).Scan(&unlogged); err != nil {
			sqlTx.Rollback()
			return 0, fmt.Errorf("store: count unlogged writes: %w", err)
		}
	}
	plans, snaps, err := readChanged(ctx, sqlTx, t.plansChanged, t.touched)
	if err != nil {
		sqlTx.Rollback()
		return 0, err
	}
	if t.lastSeq > 0 {
		if err := db.eng.AnnounceChanges(ctx, sqlTx, ""); err != nil {
			sqlTx.Rollback()
			return 0, fmt.Errorf("store: announce changes: %w", err)
		}
	}
	if err := db.announceCharges(ctx, sqlTx, t); err != nil {
		sqlTx.Rollback()
		return 0, fmt.Errorf("store: announce charges: %w", err)
	}
	if err := sqlTx.Commit(); err != nil {
		return 0, fmt.Errorf("store: commit: %w", err)
	}
	db.applyIndex(plans, snaps)
	db.applySites(snaps)
	db.followOwn(t)
	for id, credits := range t.credits {
		if n, err := parseID(prefixAccount, id); err == nil && !t.touched[id] {
			db.index.SetCredits(n, credits)
		}
	}
	for pos, spent := range t.keySpent {
		db.index.SetSpent(pos, keyindex.Spend{Start: spent.start, Spent: spent.spent})
	}
	if unlogged >= 0 {
		db.sawUnloggedWrite(unlogged)
	}
	if t.notify {
		db.notifyChanged()
	}
	return t.lastSeq, nil
}

// followOwn moves the follower past the events t wrote, which the index
// has just applied, when no other event came before them that it has not
// applied yet: so that a replica does not read its own changes back when
// the database announces them. writeMu must be held.
func (db *DB) followOwn(t *Tx) {
	if t.lastSeq > 0 && t.eng.Shared() && t.priorSeq == db.followedSeq {
		db.followedSeq = t.lastSeq
	}
}

// touch marks an account for an index refresh after commit.
func (t *Tx) touch(accountID string) { t.touched[accountID] = true }

// event appends an event for accountID (empty for none) and marks the
// account for an index refresh. data must never hold a key or its hash.
//
// The event's Sequence is the account's previous one plus one: writes are
// serialised, so it increases in commit order. Its time is the
// transaction's to the millisecond.
func (t *Tx) event(ctx context.Context, accountID, typ string, actor Actor, targetID string, data eventData) (Event, error) {
	body, err := json.Marshal(data)
	if err != nil {
		return Event{}, err
	}
	at := t.exact.Truncate(time.Millisecond)
	if t.lastSeq == 0 && t.eng.Shared() {
		// Writes take turns (engine.BeginWrite): no other event can come
		// between this one and the last in the log now.
		if err := t.tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&t.priorSeq); err != nil {
			return Event{}, fmt.Errorf("store: last event: %w", err)
		}
	}
	var (
		seq      int64
		sequence sql.NullInt64
	)
	err = t.tx.QueryRowContext(ctx, `INSERT INTO events
		(account_id, account_seq, type, actor_type, actor_id, actor_ip, target_id, data, created_at_ms, channel)
		VALUES (?1, CASE WHEN CAST(?1 AS TEXT) IS NULL THEN NULL ELSE
				(SELECT coalesce(max(account_seq), 0) + 1 FROM events WHERE account_id = ?1) END,
			?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
		RETURNING seq, account_seq`,
		nullString(accountID), typ, actor.Type, nullString(actor.KeyID), nullString(actor.IP),
		nullString(targetID), string(body), at.UnixMilli(), nullString(actor.Channel)).Scan(&seq, &sequence)
	if err != nil {
		return Event{}, fmt.Errorf("store: append event: %w", err)
	}
	t.notify = true
	t.lastSeq = seq
	if accountID != "" {
		t.touch(accountID)
	}
	if typ == EventPlanUpdated {
		t.plansChanged = true
	}
	return Event{Seq: seq, Sequence: sequence.Int64, ID: formatID(prefixEvent, uint64(seq)), AccountID: accountID, Type: typ,
		Actor: actor, TargetID: targetID, Data: body, CreatedAt: at}, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.Unix(v.Int64, 0).UTC()
	return &t
}

// queryer is what reading needs: *sql.DB, *sql.Tx and *sql.Conn all have it.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readChanged reads the committed (or about to commit) state of the plans and
// accounts that changed, for the index.
func readChanged(ctx context.Context, q queryer, plansChanged bool, accounts map[string]bool) ([]Plan, []accountSnapshot, error) {
	var plans []Plan
	if plansChanged {
		var err error
		if plans, err = listPlans(ctx, q); err != nil {
			return nil, nil, err
		}
	}
	snaps := make([]accountSnapshot, 0, len(accounts))
	for id := range accounts {
		snap, err := readAccountSnapshot(ctx, q, id)
		if err != nil {
			return nil, nil, err
		}
		snaps = append(snaps, snap)
	}
	return plans, snaps, nil
}

// followedChanges are what the events a follower read changed, by account:
// nil for the whole account, or the keys changed (none for the account's
// row alone). Reading back a key rather than all of an account's keys
// matters on a replica: an account with thousands of aliases would
// otherwise be read whole by every replica after each change to one.
type followedChanges map[string]map[string]bool

func (c followedChanges) add(accountID string, scope indexScope, targetID string) {
	keys, seen := c[accountID]
	switch {
	case scope == scopeNone:
	case seen && keys == nil: // whole already
	case scope == scopeKey:
		if keys == nil {
			keys = map[string]bool{}
			c[accountID] = keys
		}
		if strings.HasPrefix(targetID, prefixKey) {
			keys[targetID] = true
		}
	default:
		c[accountID] = nil
	}
}

// read reads the committed state of what changed, for the index.
func (c followedChanges) read(ctx context.Context, q queryer, plansChanged bool) ([]Plan, []accountSnapshot, error) {
	whole := map[string]bool{}
	for id, keys := range c {
		if keys == nil {
			whole[id] = true
		}
	}
	plans, snaps, err := readChanged(ctx, q, plansChanged, whole)
	if err != nil {
		return nil, nil, err
	}
	for id, keys := range c {
		if keys == nil {
			continue
		}
		snap, err := readAccountKeys(ctx, q, id, slices.Sorted(maps.Keys(keys)))
		if err != nil {
			return nil, nil, err
		}
		snaps = append(snaps, snap)
	}
	return plans, snaps, nil
}

// accountSnapshot is an account and all its keys as committed, for the
// index, and the sites holding slots of its keys.
type accountSnapshot struct {
	keyindex.AccountSnapshot
	activations []activationRow
}

// applyIndex puts committed state into the index.
func (db *DB) applyIndex(plans []Plan, snaps []accountSnapshot) {
	accounts := make([]keyindex.AccountSnapshot, len(snaps))
	for i := range snaps {
		accounts[i] = snaps[i].AccountSnapshot
	}
	db.index.Apply(indexPlans(plans), accounts)
}

const keyRowColumns = `id, account_id, type, name, hint, hash, status, scopes, allowed_sites,
	coalesce(expires_at, 0), coalesce(valid_until, 0), coalesce(replaced_at, 0), ` + keySpendColumns

// keySpendColumns are a key's limits and what it spent, for queries FROM
// keys: its spend limit (0 and an empty period for none), the start of its
// period and the units spent in it, and max_sites (0 for none). What was
// spent is looked up only for a key with a limit: start-up reads every key
// with these columns, and most keys have none.
const keySpendColumns = `coalesce(spend_limit, 0), coalesce(spend_period, ''),
	CASE WHEN spend_limit IS NULL THEN -1
		ELSE coalesce((SELECT period_start FROM key_spend WHERE key_id = keys.id), -1) END,
	CASE WHEN spend_limit IS NULL THEN 0
		ELSE coalesce((SELECT spent FROM key_spend WHERE key_id = keys.id), 0) END,
	coalesce(max_sites, 0)`

func scanKeyRow(rows *sql.Rows) (keyindex.KeyRow, error) {
	var (
		k                     keyindex.KeyRow
		id, accountID, typ    string
		hash                  sql.RawBytes
		scopesJSON, sitesJSON string
	)
	if err := rows.Scan(&id, &accountID, &typ, &k.Name, &k.Hint, &hash, &k.Status,
		&scopesJSON, &sitesJSON, &k.ExpiresAt, &k.ValidUntil, &k.ReplacedAt,
		&k.SpendLimit, &k.SpendPeriod, &k.Spend.Start, &k.Spend.Spent, &k.MaxSites); err != nil {
		return k, err
	}
	var err error
	if k.ID, err = parseID(prefixKey, id); err != nil {
		return k, fmt.Errorf("store: key id %q: %w", id, err)
	}
	if k.AccountID, err = parseID(prefixAccount, accountID); err != nil {
		return k, fmt.Errorf("store: account id %q: %w", accountID, err)
	}
	copy(k.Hash[:], hash)
	k.Alias = typ == KeyTypeAlias
	if k.Scopes, err = joinJSONList(scopesJSON); err != nil {
		return k, err
	}
	if k.Sites, err = joinJSONList(sitesJSON); err != nil {
		return k, err
	}
	return k, nil
}

// joinJSONList turns a stored JSON string array into the index's
// comma-joined form. Neither scope rules nor host names contain commas.
func joinJSONList(s string) (string, error) {
	switch s {
	case `[]`, ``:
		return "", nil
	case `["*"]`:
		return "*", nil
	}
	var list []string
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return "", fmt.Errorf("store: stored list %q: %w", s, err)
	}
	return strings.Join(list, ","), nil
}

// readAccountSnapshot reads an account and all its keys.
func readAccountSnapshot(ctx context.Context, q queryer, accountID string) (accountSnapshot, error) {
	return readAccount(ctx, q, accountID, true, nil)
}

// readAccountKeys reads an account's row and the keys keyIDs of it (none:
// the row alone).
func readAccountKeys(ctx context.Context, q queryer, accountID string, keyIDs []string) (accountSnapshot, error) {
	return readAccount(ctx, q, accountID, false, keyIDs)
}

// readAccount reads an account's row and its keys: all of them, or only
// keyIDs, with the sites holding their slots.
func readAccount(ctx context.Context, q queryer, accountID string, allKeys bool, keyIDs []string) (accountSnapshot, error) {
	var (
		snap     accountSnapshot
		parentID sql.NullString
	)
	err := q.QueryRowContext(ctx, `SELECT plan, status, credits, parent_id FROM accounts WHERE id = ?`, accountID).
		Scan(&snap.Account.Plan, &snap.Account.Status, &snap.Account.Credits, &parentID)
	if err != nil {
		return snap, fmt.Errorf("store: read account %s: %w", accountID, err)
	}
	if snap.Account.ID, err = parseID(prefixAccount, accountID); err != nil {
		return snap, err
	}
	if parentID.Valid {
		if snap.Account.ParentID, err = parseID(prefixAccount, parentID.String); err != nil {
			return snap, err
		}
	}
	if !allKeys && len(keyIDs) == 0 {
		return snap, nil
	}
	query, args := `SELECT `+keyRowColumns+` FROM keys WHERE account_id = ?`, []any{accountID}
	if !allKeys {
		query += ` AND id IN (?` + strings.Repeat(", ?", len(keyIDs)-1) + `)`
		for _, id := range keyIDs {
			args = append(args, id)
		}
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return snap, err
	}
	defer rows.Close()
	for rows.Next() {
		k, err := scanKeyRow(rows)
		if err != nil {
			return snap, err
		}
		snap.Keys = append(snap.Keys, k)
	}
	if err := rows.Err(); err != nil {
		return snap, err
	}
	if allKeys {
		snap.activations, err = readActivations(ctx, q, accountID)
	} else {
		snap.activations, err = readKeyActivations(ctx, q, keyIDs)
	}
	return snap, err
}

// loadIndex fills the index from the index snapshot when there is one that
// passes its checks (see snapshot.go), and otherwise from the database,
// writing a new snapshot afterwards.
func (db *DB) loadIndex(ctx context.Context) error {
	started := time.Now()
	var rejected error
	if db.snapshotPath != "" {
		db.writeMu.Lock()
		rejected = db.loadSnapshot(ctx)
		db.writeMu.Unlock()
		if rejected == nil {
			db.loaded.Took = time.Since(started)
			return nil
		}
	}
	if err := db.loadDatabase(ctx); err != nil {
		return err
	}
	if rejected != nil && !errors.Is(rejected, errSnapshotMissing) {
		db.loaded.SnapshotRejected = rejected.Error()
	}
	if err := db.SaveIndexSnapshot(ctx); err != nil {
		db.loaded.SnapshotError = err.Error()
	}
	db.loaded.Took = time.Since(started)
	return nil
}

// loadDatabase fills the index from one consistent snapshot of the database
// and remembers the last event it reflects, for FollowChanges. It counts the
// keys both ways, rows in SQLite and entries in memory, and refuses to start
// when they differ.
func (db *DB) loadDatabase(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	started := time.Now()
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()

	plans, err := listPlans(ctx, tx)
	if err != nil {
		return err
	}
	var nKeys int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM keys`).Scan(&nKeys); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&db.followedSeq); err != nil {
		return err
	}
	if db.unloggedSeen, err = unloggedWrites(ctx, tx); err != nil {
		return err
	}

	ix := keyindex.New()
	loaded := false
	defer func() {
		if !loaded {
			ix.Release()
		}
	}()
	ix.Apply(indexPlans(plans), nil)
	ix.Reserve(nKeys)

	// Parents come before their subaccounts when ordered by rowid.
	rows, err := tx.QueryContext(ctx, `SELECT id, plan, status, credits, coalesce(parent_id, '') FROM accounts ORDER BY rowid`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			a          keyindex.AccountRow
			id, parent string
		)
		if err := rows.Scan(&id, &a.Plan, &a.Status, &a.Credits, &parent); err != nil {
			rows.Close()
			return err
		}
		if a.ID, err = parseID(prefixAccount, id); err != nil {
			rows.Close()
			return err
		}
		if parent != "" {
			if a.ParentID, err = parseID(prefixAccount, parent); err != nil {
				rows.Close()
				return err
			}
		}
		ix.AddAccount(a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	// Reading rows (mostly SQLite and the driver) and filling the index run
	// side by side; batches go back and forth so the reader allocates little.
	full := make(chan []keyindex.KeyRow, 4)
	free := make(chan []keyindex.KeyRow, 4)
	for range cap(free) {
		free <- make([]keyindex.KeyRow, 0, loadBatch)
	}
	readErr := make(chan error, 1)
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(full)
		readErr <- readAllKeys(readCtx, tx, free, full)
	}()
	var addErr error
	for batch := range full {
		for i := range batch {
			k := &batch[i]
			pos, ok := ix.AccountPos(k.AccountID)
			if !ok && addErr == nil {
				addErr = fmt.Errorf("store: key %s belongs to a missing account", formatID(prefixKey, k.ID))
				cancel()
			}
			if addErr == nil {
				ix.AddKey(k, pos)
			}
		}
		free <- batch[:0]
	}
	if err := <-readErr; addErr == nil && err != nil {
		return err
	}
	if addErr != nil {
		return addErr
	}
	indexKeys, accounts := ix.Counts()
	if n := indexKeys; n != nKeys {
		return fmt.Errorf("store: index holds %d keys but the database %d", n, nKeys)
	}
	if err := db.loadSites(ctx, tx); err != nil {
		return err
	}
	db.index.Release()
	db.index, loaded = ix, true
	db.loaded = LoadStats{DatabaseKeys: nKeys, IndexKeys: indexKeys, Accounts: accounts, Took: time.Since(started)}
	return nil
}

// loadBatch is how many rows travel together from the reader to the index.
const loadBatch = 4096

// bulkKeyQuery reads every key in the cheapest form for the driver: the
// common values (status, type, the default scopes and sites, no expiry) come
// as small integers, NULL or empty strings, which need no allocation, and the
// two ids come as one string.
var bulkKeyQuery = func() string {
	var b strings.Builder
	b.WriteString(`SELECT hash, id || account_id, type = 'alias', CASE status`)
	for i, st := range keyindex.KeyStatuses() {
		fmt.Fprintf(&b, ` WHEN '%s' THEN %d`, st, i)
	}
	b.WriteString(` END, name, hint,
		CASE scopes WHEN '["*"]' THEN NULL WHEN '[]' THEN '' ELSE scopes END,
		CASE allowed_sites WHEN '[]' THEN '' ELSE allowed_sites END,
		coalesce(expires_at, 0), coalesce(valid_until, 0), coalesce(replaced_at, 0), ` + keySpendColumns + `
		FROM keys`)
	return b.String()
}()

// readAllKeys sends every key row, in batches taken from free, to full.
func readAllKeys(ctx context.Context, q queryer, free <-chan []keyindex.KeyRow, full chan<- []keyindex.KeyRow) error {
	rows, err := q.QueryContext(ctx, bulkKeyQuery)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		hash, ids      sql.RawBytes
		status         int
		scopes         sql.NullString
		sites          string
		prefixLen      = len(prefixKey) + 16
		keyStatuses    = keyindex.KeyStatuses()
		batch          = <-free
		sendBatch      = func() { full <- batch; batch = <-free }
		errMalformedID = func() error { return fmt.Errorf("store: malformed key or account id %q", ids) }
	)
	for rows.Next() {
		batch = append(batch, keyindex.KeyRow{})
		k := &batch[len(batch)-1]
		if err := rows.Scan(&hash, &ids, &k.Alias, &status, &k.Name, &k.Hint, &scopes, &sites,
			&k.ExpiresAt, &k.ValidUntil, &k.ReplacedAt, &k.SpendLimit, &k.SpendPeriod, &k.Spend.Start, &k.Spend.Spent, &k.MaxSites); err != nil {
			return err
		}
		if len(hash) != len(k.Hash) || status < 0 || status >= len(keyStatuses) {
			return fmt.Errorf("store: malformed key row (hash of %d bytes, status %d)", len(hash), status)
		}
		copy(k.Hash[:], hash)
		if len(ids) < prefixLen {
			return errMalformedID()
		}
		if k.ID, err = parseID(prefixKey, string(ids[:prefixLen])); err != nil {
			return errMalformedID()
		}
		if k.AccountID, err = parseID(prefixAccount, string(ids[prefixLen:])); err != nil {
			return errMalformedID()
		}
		k.Status = keyStatuses[status]
		k.Scopes = "*"
		if scopes.Valid {
			if k.Scopes, err = joinJSONList(scopes.String); err != nil {
				return err
			}
		}
		if k.Sites, err = joinJSONList(sites); err != nil {
			return err
		}
		if len(batch) == cap(batch) {
			sendBatch()
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		full <- batch
	}
	return nil
}

// FollowChanges keeps the index in step with changes committed by other
// processes on the same database: operator commands run while keyd serves,
// and other replicas on a shared database (see replicas.go). It reads the
// event log when the engine announces changes and every interval besides,
// and the pools other replicas announce they charged (charges_follow.go),
// until ctx ends, and then records how far it got (the replica's
// heartbeat). Changes made through this DB are already in the index;
// re-reading them is harmless.
func (db *DB) FollowChanges(ctx context.Context, interval time.Duration) {
	wake, chargesWake := make(chan struct{}, 1), make(chan struct{}, 1)
	signal := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	go db.eng.ListenChanges(ctx, db.path, func(payload string) {
		events, charges := db.charges.heard(payload, db.replica.id)
		if events {
			signal(wake)
		}
		if charges {
			signal(chargesWake)
		}
	}, func() {
		db.charges.missedSome()
		signal(wake)
	})
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pass := db.followOnce
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		case <-chargesWake:
			pass = db.followCharges
		}
		// A database that stops answering (a partition drops packets
		// rather than refusing them) must not hold the writers up for
		// longer than it takes the others to stop waiting for this one.
		passCtx, cancel := context.WithTimeout(ctx, db.replica.settings.Timeout)
		pass(passCtx) // errors are retried on the next pass
		cancel()
	}
}

func (db *DB) followOnce(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if _, err := db.catchUp(ctx); err != nil {
		return err
	}
	if err := db.readChargesLocked(ctx); err != nil {
		return err
	}
	return db.heartbeatLocked(ctx)
}

// catchUp applies every event after followedSeq, as many batches as it
// takes, and returns how many there were. writeMu must be held.
func (db *DB) catchUp(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := db.followLocked(ctx)
		total += n
		if err != nil || n < followBatch {
			return total, err
		}
	}
}

// followBatch is how many events followLocked reads at most.
const followBatch = 10000

// followLocked applies the events after followedSeq, followBatch at most,
// and returns how many it read. writeMu must be held.
func (db *DB) followLocked(ctx context.Context) (int, error) {
	rows, err := db.w.QueryContext(ctx, `SELECT seq, coalesce(account_id, ''), type, coalesce(target_id, '')
		FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, db.followedSeq, followBatch)
	if err != nil {
		return 0, err
	}
	changes := followedChanges{}
	plansChanged := false
	last, n := db.followedSeq, 0
	for rows.Next() {
		var (
			seq               int64
			id, typ, targetID string
		)
		if err := rows.Scan(&seq, &id, &typ, &targetID); err != nil {
			rows.Close()
			return 0, err
		}
		last = seq
		n++
		if id != "" {
			changes.add(id, eventIndexScope(typ), targetID)
		}
		if typ == EventPlanUpdated {
			plansChanged = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || n == 0 {
		return 0, err
	}
	plans, snaps, err := changes.read(ctx, db.w, plansChanged)
	if err != nil {
		return 0, err
	}
	db.applyIndex(plans, snaps)
	db.applySites(snaps)
	db.followedSeq = last
	db.notifyChanged() // webhook messages to fan out, made elsewhere
	return n, nil
}
