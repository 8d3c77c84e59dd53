package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Tx is a write transaction. Every change made through it that concerns an
// account appends an event, and the accounts it touched are re-read into the
// index right after the commit, in commit order.
type Tx struct {
	tx    *sql.Tx
	now   time.Time // the transaction's time, in whole seconds as stored
	exact time.Time // the same instant before truncation

	touched      map[string]bool // account ids to refresh in the index
	plansChanged bool
	notify       bool             // tell Changes() listeners after commit
	credits      map[string]int64 // new pool sizes, for accounts not refreshed whole
}

// setCredits records an account's new pool size for the index, which is
// cheaper than re-reading the whole account after every charge.
func (t *Tx) setCredits(accountID string, credits int64) { t.credits[accountID] = credits }

// write runs fn in a write transaction and, once it has committed, brings the
// index up to date with what it changed. Holding writeMu across both keeps
// index updates in commit order.
func (db *DB) write(ctx context.Context, fn func(*Tx) error) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	sqlTx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	exact := db.now().UTC()
	t := &Tx{tx: sqlTx, now: exact.Truncate(time.Second), exact: exact, touched: map[string]bool{}, credits: map[string]int64{}}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	plans, snaps, err := readChanged(ctx, sqlTx, t.plansChanged, t.touched)
	if err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	db.index.apply(plans, snaps)
	for id, credits := range t.credits {
		if !t.touched[id] {
			db.index.setCredits(id, credits)
		}
	}
	if t.notify {
		db.notifyChanged()
	}
	return nil
}

// touch marks an account for an index refresh after commit.
func (t *Tx) touch(accountID string) { t.touched[accountID] = true }

// event appends an event for accountID (empty for none) and marks the
// account for an index refresh. data must never hold a key or its hash.
func (t *Tx) event(ctx context.Context, accountID, typ string, actor Actor, targetID string, data any) (Event, error) {
	body, err := json.Marshal(data)
	if err != nil {
		return Event{}, err
	}
	res, err := t.tx.ExecContext(ctx, `INSERT INTO events
		(account_id, type, actor_type, actor_id, actor_ip, target_id, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		nullString(accountID), typ, actor.Type, nullString(actor.KeyID), nullString(actor.IP),
		nullString(targetID), string(body), t.now.Unix())
	if err != nil {
		return Event{}, fmt.Errorf("store: append event: %w", err)
	}
	seq, _ := res.LastInsertId()
	t.notify = true
	if accountID != "" {
		t.touch(accountID)
	}
	if typ == EventPlanUpdated {
		t.plansChanged = true
	}
	return Event{Seq: seq, ID: formatID(prefixEvent, uint64(seq)), AccountID: accountID, Type: typ,
		Actor: actor, TargetID: targetID, Data: body, CreatedAt: t.now}, nil
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

const keyRowColumns = `id, account_id, type, name, hint, hash, status, scopes, allowed_sites,
	coalesce(expires_at, 0), coalesce(valid_until, 0)`

func scanKeyRow(rows *sql.Rows) (keyRow, error) {
	var (
		k                     keyRow
		id, accountID, typ    string
		hash                  sql.RawBytes
		scopesJSON, sitesJSON string
	)
	if err := rows.Scan(&id, &accountID, &typ, &k.name, &k.hint, &hash, &k.status,
		&scopesJSON, &sitesJSON, &k.expiresAt, &k.validUntil); err != nil {
		return k, err
	}
	var err error
	if k.id, err = parseID(prefixKey, id); err != nil {
		return k, fmt.Errorf("store: key id %q: %w", id, err)
	}
	if k.accountID, err = parseID(prefixAccount, accountID); err != nil {
		return k, fmt.Errorf("store: account id %q: %w", accountID, err)
	}
	copy(k.hash[:], hash)
	k.alias = typ == KeyTypeAlias
	if k.scopes, err = joinJSONList(scopesJSON); err != nil {
		return k, err
	}
	if k.sites, err = joinJSONList(sitesJSON); err != nil {
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

func readAccountSnapshot(ctx context.Context, q queryer, accountID string) (accountSnapshot, error) {
	var (
		snap     accountSnapshot
		parentID sql.NullString
	)
	err := q.QueryRowContext(ctx, `SELECT plan, status, credits, parent_id FROM accounts WHERE id = ?`, accountID).
		Scan(&snap.account.plan, &snap.account.status, &snap.account.credits, &parentID)
	if err != nil {
		return snap, fmt.Errorf("store: read account %s: %w", accountID, err)
	}
	if snap.account.id, err = parseID(prefixAccount, accountID); err != nil {
		return snap, err
	}
	if parentID.Valid {
		if snap.account.parentID, err = parseID(prefixAccount, parentID.String); err != nil {
			return snap, err
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT `+keyRowColumns+` FROM keys WHERE account_id = ?`, accountID)
	if err != nil {
		return snap, err
	}
	defer rows.Close()
	for rows.Next() {
		k, err := scanKeyRow(rows)
		if err != nil {
			return snap, err
		}
		snap.keys = append(snap.keys, k)
	}
	return snap, rows.Err()
}

// loadIndex fills the index from one consistent snapshot of the database and
// remembers the last event it reflects, for FollowChanges.
func (db *DB) loadIndex(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
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

	ix := newIndex()
	ix.setPlans(plans)
	ix.reserve(nKeys)
	ix.keys = make([]keyRecord, 0, nKeys)

	// Parents come before their subaccounts when ordered by rowid.
	rows, err := tx.QueryContext(ctx, `SELECT id, plan, status, credits, coalesce(parent_id, '') FROM accounts ORDER BY rowid`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			a          accountRow
			id, parent string
		)
		if err := rows.Scan(&id, &a.plan, &a.status, &a.credits, &parent); err != nil {
			rows.Close()
			return err
		}
		if a.id, err = parseID(prefixAccount, id); err != nil {
			rows.Close()
			return err
		}
		if parent != "" {
			if a.parentID, err = parseID(prefixAccount, parent); err != nil {
				rows.Close()
				return err
			}
		}
		ix.upsertAccount(a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = tx.QueryContext(ctx, `SELECT `+keyRowColumns+` FROM keys`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		k, err := scanKeyRow(rows)
		if err != nil {
			return err
		}
		pos, ok := ix.accountPos[k.accountID]
		if !ok {
			return fmt.Errorf("store: key %s belongs to a missing account", formatID(prefixKey, k.id))
		}
		ix.upsertKey(k, pos)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ix.keys) != nKeys {
		return fmt.Errorf("store: index holds %d keys but the database %d", len(ix.keys), nKeys)
	}
	db.index = ix
	return nil
}

// FollowChanges keeps the index in step with changes committed by other
// processes on the same database file (operator CLI commands run while keyd
// serves). It polls the event log every interval until ctx ends. Changes made
// through this DB are already in the index; re-reading them is harmless.
func (db *DB) FollowChanges(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			db.followOnce(ctx) // errors are retried on the next tick
		}
	}
}

func (db *DB) followOnce(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	rows, err := db.w.QueryContext(ctx, `SELECT seq, coalesce(account_id, ''), type FROM events WHERE seq > ? ORDER BY seq LIMIT 10000`, db.followedSeq)
	if err != nil {
		return err
	}
	accounts := map[string]bool{}
	plansChanged := false
	last := db.followedSeq
	for rows.Next() {
		var (
			seq     int64
			id, typ string
		)
		if err := rows.Scan(&seq, &id, &typ); err != nil {
			rows.Close()
			return err
		}
		last = seq
		if id != "" {
			accounts[id] = true
		}
		if typ == EventPlanUpdated {
			plansChanged = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || last == db.followedSeq {
		return err
	}
	plans, snaps, err := readChanged(ctx, db.w, plansChanged, accounts)
	if err != nil {
		return err
	}
	db.index.apply(plans, snaps)
	db.followedSeq = last
	return nil
}
