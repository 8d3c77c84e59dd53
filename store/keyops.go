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
	(SELECT last_used_at FROM key_last_used WHERE key_id = keys.id), ` + keySpendColumns + `, release_after, hash`

func scanKey(row interface{ Scan(...any) error }, extra ...any) (Key, error) {
	var (
		k                             Key
		scopes, sites                 string
		expires, validUntil, lastUsed sql.NullInt64
		created                       int64
		hash                          []byte
		limit                         SpendLimit
		maxSites                      int
		releaseAfter                  sql.NullInt64
	)
	err := row.Scan(append([]any{&k.ID, &k.AccountID, &k.Type, &k.Name, &k.Hint, &k.Status, &scopes, &sites,
		&expires, &validUntil, &created, &lastUsed, &limit.Limit, &limit.Period, &k.spend.start, &k.spend.spent,
		&maxSites, &releaseAfter, &hash}, extra...)...)
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
	if limit.Limit > 0 {
		k.SpendLimit = &limit
	}
	if maxSites > 0 {
		k.MaxSites = &maxSites
	}
	if releaseAfter.Valid {
		d := time.Duration(releaseAfter.Int64) * time.Second
		k.ReleaseAfter = &d
	}
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
	return db.listKeys(ctx, `SELECT `+keyColumns+` FROM keys WHERE account_id = ?
		ORDER BY type = 'alias', created_at, rowid`, accountID)
}

// ListPrimaryKeys returns an account's primary keys, oldest first: the
// current one and those replaced by resets. Unlike ListKeys it does not
// read the aliases, of which an account may have thousands.
func (db *DB) ListPrimaryKeys(ctx context.Context, accountID string) ([]Key, error) {
	return db.listKeys(ctx, `SELECT `+keyColumns+` FROM keys WHERE account_id = ? AND type = 'primary'
		ORDER BY created_at, rowid`, accountID)
}

func (db *DB) listKeys(ctx context.Context, query, accountID string) ([]Key, error) {
	rows, err := db.r.QueryContext(ctx, query, accountID)
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
	// Revoked are older primary keys whose grace period this reset ended.
	Revoked []Key
}

// Reasons given in key.revoked events.
const (
	RevokedGraceEnded = "grace_ended" // its grace period ran out
	RevokedByReset    = "reset"       // a later reset ended its grace
	RevokedEarly      = "ended_early" // its grace was ended on request
)

// ResetPrimaryKey replaces the account's primary key. The old key keeps
// working for grace (0 = it dies now), then validation answers REVOKED.
// At most one old key is ever in grace: the reset revokes every older
// primary key still in its grace period at once (key.revoked), so that a
// reset without grace leaves no key but the new one, whatever came before.
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
		inGrace, err := t.primariesInGrace(ctx, accountID)
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
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET status = ?, valid_until = ?, replaced_at = ?, updated_at = ? WHERE id = ?`,
			status, validUntil.Unix(), t.now.Unix(), t.now.Unix(), old.ID); err != nil {
			return fmt.Errorf("store: retire primary key: %w", err)
		}
		secret, key, err := t.insertKey(ctx, accountID, KeyTypePrimary, old.Name, old.Scopes, old.AllowedSites, nil)
		if err != nil {
			return err
		}
		// The new key keeps the old one's limits; its spending and its
		// sites are counted afresh, as sites move to it.
		if err := t.setLimits(ctx, key.ID, old.limits()); err != nil {
			return err
		}
		if key, err = getKey(ctx, t.tx, accountID, key.ID); err != nil {
			return err
		}
		if out.Previous, err = getKey(ctx, t.tx, accountID, old.ID); err != nil {
			return err
		}
		out.Key, out.Secret = key, secret
		// key.reset announces the end of the key it replaces; key.revoked
		// each older key whose grace the reset cuts short.
		if _, err = t.event(ctx, accountID, EventKeyReset, actor, key.ID, KeyResetData{
			AccountID: accountID, Hint: key.Hint, KeyID: key.ID, Name: key.Name, Status: key.Status, Type: KeyTypePrimary,
			Previous: PreviousKeyData{Hint: old.Hint, ID: old.ID, ValidUntil: validUntil.Format(time.RFC3339)},
		}); err != nil {
			return err
		}
		for _, k := range inGrace {
			revoked, err := t.revokePrimary(ctx, actor, k, RevokedByReset)
			if err != nil {
				return err
			}
			out.Revoked = append(out.Revoked, revoked)
		}
		return nil
	})
	out.Previous = db.withLastUse(out.Previous)
	return out, err
}

// primariesInGrace returns the account's replaced primary keys that still
// validate: their grace period has not ended. Keys whose grace has ended
// are left to RevokeEndedGrace, which announces them.
func (t *Tx) primariesInGrace(ctx context.Context, accountID string) ([]Key, error) {
	return t.keysWhere(ctx, `account_id = ? AND type = 'primary' AND status = 'active'
		AND valid_until IS NOT NULL AND valid_until > ?`, accountID, t.now.Unix())
}

// revokePrimary marks a replaced primary key revoked from now on (its
// valid_until becomes now unless it has already passed) and writes
// key.revoked. The index is refreshed after commit, so the very next
// validation refuses the key.
func (t *Tx) revokePrimary(ctx context.Context, actor Actor, k Key, reason string) (Key, error) {
	if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET status = 'revoked', valid_until = CASE WHEN valid_until < ? THEN valid_until ELSE ? END,
		updated_at = ? WHERE id = ?`, t.now.Unix(), t.now.Unix(), t.now.Unix(), k.ID); err != nil {
		return Key{}, fmt.Errorf("store: revoke key: %w", err)
	}
	k, err := getKey(ctx, t.tx, k.AccountID, k.ID)
	if err != nil {
		return Key{}, err
	}
	_, err = t.event(ctx, k.AccountID, EventKeyRevoked, actor, k.ID, KeyRevokedData{
		AccountID: k.AccountID, Hint: k.Hint, KeyID: k.ID, Name: k.Name, Reason: reason, Status: KeyRevoked, Type: k.Type,
		ValidUntil: k.ValidUntil,
	})
	return k, err
}

// RevokeGrace ends the grace period of a primary key replaced by a reset:
// it stops validating now (key.revoked). A key whose grace has already
// ended is returned as it is. The current primary key and aliases are
// refused: they are reset, deactivated or deleted instead.
func (db *DB) RevokeGrace(ctx context.Context, actor Actor, accountID, keyID string) (Key, error) {
	var out Key
	err := db.write(ctx, func(t *Tx) error {
		k, err := getKey(ctx, t.tx, accountID, keyID)
		if err != nil {
			return err
		}
		switch {
		case k.Type != KeyTypePrimary:
			return invalidField("id", "is an alias; deactivate it or delete it instead")
		case k.ValidUntil == nil:
			return invalidField("id", "is the current primary key; replace it with a reset instead")
		case !k.InGraceAt(t.now):
			out = k
			return nil
		}
		out, err = t.revokePrimary(ctx, actor, k, RevokedEarly)
		return err
	})
	return db.withLastUse(out), err
}
