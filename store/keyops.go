package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// keyColumns are a key's columns for queries FROM keys; its last use lives
// in key_last_used.
const keyColumns = `id, account_id, type, name, hint, status, scopes, allowed_sites,
	expires_at, valid_until, created_at,
	(SELECT last_used_at FROM key_last_used WHERE key_id = keys.id), hash`

func scanKey(row interface{ Scan(...any) error }, extra ...any) (Key, error) {
	var (
		k                             Key
		scopes, sites                 string
		expires, validUntil, lastUsed sql.NullInt64
		created                       int64
		hash                          []byte
	)
	err := row.Scan(append([]any{&k.ID, &k.AccountID, &k.Type, &k.Name, &k.Hint, &k.Status, &scopes, &sites,
		&expires, &validUntil, &created, &lastUsed, &hash}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, err
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return k, fmt.Errorf("store: key %s scopes: %w", k.ID, err)
	}
	if err := json.Unmarshal([]byte(sites), &k.AllowedSites); err != nil {
		return k, fmt.Errorf("store: key %s sites: %w", k.ID, err)
	}
	k.ExpiresAt, k.ValidUntil, k.LastUsedAt = timePtr(expires), timePtr(validUntil), timePtr(lastUsed)
	k.CreatedAt = time.Unix(created, 0).UTC()
	copy(k.hash[:], hash)
	return k, nil
}

// withLastUse is k with its last use as every answer shows it: the later of
// the stored last_used_at (written by the activity flush, to the hour) and
// the use still waiting in memory (exact). Every method that hands keys out
// passes them through it, so they all agree with ListKeys.
func (db *DB) withLastUse(k Key) Key {
	if t, ok := db.pendingLastUsed(k.hash); ok && (k.LastUsedAt == nil || t.After(*k.LastUsedAt)) {
		k.LastUsedAt = &t
	}
	return k
}

func getKey(ctx context.Context, q queryer, accountID, keyID string) (Key, error) {
	return scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = ? AND account_id = ?`, keyID, accountID))
}

// GetKey returns one key of an account; another account's key is ErrNotFound.
func (db *DB) GetKey(ctx context.Context, accountID, keyID string) (Key, error) {
	k, err := getKey(ctx, db.r, accountID, keyID)
	return db.withLastUse(k), err
}

// ListKeys returns an account's keys: primary keys first, then aliases, each
// oldest first. Last-used times still waiting in memory are included.
func (db *DB) ListKeys(ctx context.Context, accountID string) ([]Key, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE account_id = ?
		ORDER BY type = 'alias', created_at, rowid`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, db.withLastUse(k))
	}
	return out, rows.Err()
}

// MaxGracePeriod is the longest an old primary key may keep working after a reset.
const MaxGracePeriod = 168 * time.Hour

func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t
}

// Reset is the outcome of a primary key reset.
type Reset struct {
	Key      Key
	Secret   string // the new key, shown once
	Previous Key    // the old key, with ValidUntil set
}

// ResetPrimaryKey replaces the account's primary key. The old key keeps
// working for grace (0 = it dies now), then validation answers REVOKED.
// Aliases are not touched.
func (db *DB) ResetPrimaryKey(ctx context.Context, actor Actor, accountID string, grace time.Duration) (Reset, error) {
	if grace < 0 || grace > MaxGracePeriod {
		return Reset{}, invalidField("grace_period", "must be between 0 and 168h")
	}
	var out Reset
	err := db.write(ctx, func(t *Tx) error {
		old, err := scanKey(t.tx.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys
			WHERE account_id = ? AND type = 'primary' AND status = 'active' AND valid_until IS NULL`, accountID))
		if err != nil {
			return err
		}
		// Deadlines are kept in whole seconds; rounding up means a grace
		// period is never shorter than asked.
		validUntil := t.now
		status := KeyRevoked
		if grace > 0 {
			validUntil = ceilSecond(t.exact.Add(grace))
			status = KeyActive // it validates until valid_until; a job marks it revoked then
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET status = ?, valid_until = ?, updated_at = ? WHERE id = ?`,
			status, validUntil.Unix(), t.now.Unix(), old.ID); err != nil {
			return fmt.Errorf("store: retire primary key: %w", err)
		}
		secret, key, err := t.insertKey(ctx, accountID, KeyTypePrimary, old.Name, old.Scopes, old.AllowedSites, nil)
		if err != nil {
			return err
		}
		if out.Previous, err = getKey(ctx, t.tx, accountID, old.ID); err != nil {
			return err
		}
		out.Key, out.Secret = key, secret
		_, err = t.event(ctx, accountID, EventKeyReset, actor, key.ID, map[string]any{
			"account_id": accountID,
			"key_id":     key.ID, "type": KeyTypePrimary, "name": key.Name, "hint": key.Hint, "status": key.Status,
			"previous": map[string]any{"id": old.ID, "hint": old.Hint, "valid_until": validUntil.Format(time.RFC3339)},
		})
		return err
	})
	out.Previous = db.withLastUse(out.Previous)
	return out, err
}
