package store

import (
	"context"
	"fmt"
	"time"
)

// Sweeps run from jobs. Each works in one transaction and changes only rows
// still in the state it looks for, so a sweep that repeats, overlaps or is
// killed midway never emits an event twice or loses one.

// maxSweep bounds one transaction; the next run picks up the rest.
const maxSweep = 1000

// ExpireAliases marks aliases past their expiry as expired (alias.expired),
// and warns once about aliases expiring within lead (alias.expiring). It
// returns how many of each it handled.
func (db *DB) ExpireAliases(ctx context.Context, lead time.Duration) (expired, expiring int, err error) {
	err = db.write(ctx, func(t *Tx) error {
		due, err := t.keysWhere(ctx, `type = 'alias' AND status = 'active' AND expires_at IS NOT NULL AND expires_at <= ?`, t.now.Unix())
		if err != nil {
			return err
		}
		for _, k := range due {
			if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET status = 'expired', updated_at = ? WHERE id = ? AND status = 'active'`,
				t.now.Unix(), k.ID); err != nil {
				return fmt.Errorf("store: expire alias: %w", err)
			}
			k.Status = KeyExpired
			if _, err := t.event(ctx, k.AccountID, EventAliasExpired, SystemActor, k.ID, aliasData(k, t.now)); err != nil {
				return err
			}
		}
		soon, err := t.keysWhere(ctx, `type = 'alias' AND status = 'active' AND expires_at IS NOT NULL
			AND expires_at > ? AND expires_at <= ? AND expiring_notified_at IS NULL`, t.now.Unix(), t.now.Add(lead).Unix())
		if err != nil {
			return err
		}
		for _, k := range soon {
			if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET expiring_notified_at = ? WHERE id = ?`, t.now.Unix(), k.ID); err != nil {
				return fmt.Errorf("store: mark alias expiring: %w", err)
			}
			if _, err := t.event(ctx, k.AccountID, EventAliasExpiring, SystemActor, k.ID, aliasData(k, t.now)); err != nil {
				return err
			}
		}
		expired, expiring = len(due), len(soon)
		return nil
	})
	return expired, expiring, err
}

// RevokeEndedGrace marks reset primary keys whose grace period has ended as
// revoked (key.revoked). Validation already refuses them from valid_until on.
func (db *DB) RevokeEndedGrace(ctx context.Context) (int, error) {
	var n int
	err := db.write(ctx, func(t *Tx) error {
		due, err := t.keysWhere(ctx, `status = 'active' AND valid_until IS NOT NULL AND valid_until <= ?`, t.now.Unix())
		if err != nil {
			return err
		}
		for _, k := range due {
			if _, err := t.revokePrimary(ctx, SystemActor, k, RevokedGraceEnded); err != nil {
				return err
			}
		}
		n = len(due)
		return nil
	})
	return n, err
}

func (t *Tx) keysWhere(ctx context.Context, where string, args ...any) ([]Key, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE `+where+` ORDER BY rowid LIMIT ?`,
		append(args, maxSweep)...)
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
		out = append(out, k)
	}
	return out, rows.Err()
}
