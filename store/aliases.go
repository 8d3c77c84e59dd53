package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxAliasNameLength is the longest alias name.
const MaxAliasNameLength = 50

// ValidAliasName reports whether name is 1 to 50 letters, digits, spaces,
// '-' and '_', neither starting nor ending with a space.
func ValidAliasName(name string) bool {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxAliasNameLength || !utf8.ValidString(name) || name[0] == ' ' || name[len(name)-1] == ' ' {
		return false
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// NewAlias is what creating an alias takes. A nil ExpiresAt makes a
// permanent alias; nil Scopes means ["*"] (everything the primary allows).
type NewAlias struct {
	Name         string
	ExpiresAt    *time.Time
	Scopes       []string
	AllowedSites []string
	SpendLimit   *SpendLimit    // nil: none
	MaxSites     *int           // nil: any number of sites
	ReleaseAfter *time.Duration // nil: sites keep their slots until released
}

// limits are the limits an alias is created with.
func (in NewAlias) limits() LimitsPatch {
	return LimitsPatch{SetSpendLimit: in.SpendLimit != nil, SpendLimit: in.SpendLimit,
		SetMaxSites: in.MaxSites != nil, MaxSites: in.MaxSites, SetReleaseAfter: in.ReleaseAfter != nil, ReleaseAfter: in.ReleaseAfter}
}

// AliasPatch changes an alias; nil fields stay as they are. SetExpiry with a
// nil ExpiresAt makes the alias permanent.
type AliasPatch struct {
	Name         *string
	Scopes       []string // nil: unchanged
	AllowedSites []string // nil: unchanged
	SetExpiry    bool
	ExpiresAt    *time.Time
	LimitsPatch
}

// checkExpiry is the last guard, inside the transaction, on an expiry the
// caller checked with CheckExpiresAt or made with ExpiryFromTTL a moment
// earlier: it must still be in the future, and not beyond the longest
// lifetime (which only grows shorter as time passes, so it is checked again).
func (t *Tx) checkExpiry(expiresAt *time.Time) error {
	if expiresAt != nil && !expiresAt.After(t.now) {
		return invalidField("expires_at", "must be in the future")
	}
	if expiresAt != nil && expiresAt.Sub(t.now) > AliasLifetime.Max {
		return invalidField("expires_at", "must be between 1 minute and 3650 days from now")
	}
	return nil
}

// checkScopesWithinPrimary enforces that an alias never allows more than its
// account's primary key.
func (t *Tx) checkScopesWithinPrimary(ctx context.Context, c Catalogue, accountID string, rules []string) error {
	var primaryJSON string
	if err := t.tx.QueryRowContext(ctx, `SELECT scopes FROM keys WHERE account_id = ? AND type = 'primary'
		AND status = 'active' AND valid_until IS NULL`, accountID).Scan(&primaryJSON); err != nil {
		return fmt.Errorf("store: primary key scopes: %w", err)
	}
	var primary []string
	if err := json.Unmarshal([]byte(primaryJSON), &primary); err != nil {
		return err
	}
	if !c.RulesWithin(rules, primary) {
		return ErrScopeExceeds
	}
	return nil
}

// reserveAliasSlot fails with ErrAliasLimit when the account has no free
// alias slot. It runs inside the write transaction that takes the slot, so
// concurrent requests can never exceed the limit.
func (t *Tx) reserveAliasSlot(ctx context.Context, accountID string) error {
	limit, err := effectiveAliasLimit(ctx, t.tx, accountID)
	if err != nil {
		return err
	}
	used, err := activeAliases(ctx, t.tx, accountID, t.now)
	if err != nil {
		return err
	}
	if used >= limit {
		return ErrAliasLimit
	}
	return nil
}

// CreateAlias creates an alias key for an account.
func (db *DB) CreateAlias(ctx context.Context, actor Actor, accountID string, in NewAlias) (Created, error) {
	if !ValidAliasName(in.Name) {
		return Created{}, invalidField("name", "must be 1 to 50 letters, digits, spaces, '-' or '_'")
	}
	if in.Scopes == nil {
		in.Scopes = []string{"*"}
	}
	scopes, err := db.scopes.CheckRules(in.Scopes)
	if err != nil {
		return Created{}, err
	}
	sites, err := CheckSitePatterns(in.AllowedSites)
	if err != nil {
		return Created{}, err
	}
	if err := in.limits().check(); err != nil {
		return Created{}, err
	}
	var out Created
	err = db.write(ctx, func(t *Tx) error {
		if err := t.checkExpiry(in.ExpiresAt); err != nil {
			return err
		}
		acc, err := getAccount(ctx, t.tx, accountID)
		if err != nil {
			return err
		}
		if err := t.checkScopesWithinPrimary(ctx, db.scopes, accountID, scopes); err != nil {
			return err
		}
		if err := t.reserveAliasSlot(ctx, accountID); err != nil {
			return err
		}
		secret, key, err := t.insertKey(ctx, accountID, KeyTypeAlias, in.Name, scopes, sites, in.ExpiresAt)
		if err != nil {
			return err
		}
		if err := t.setLimits(ctx, key.ID, in.limits()); err != nil {
			return err
		}
		if key, err = getKey(ctx, t.tx, accountID, key.ID); err != nil {
			return err
		}
		if _, err := t.event(ctx, accountID, EventAliasCreated, actor, key.ID, aliasData(key, t.now)); err != nil {
			return err
		}
		out = Created{Account: acc, Key: key, Secret: secret}
		return nil
	})
	return out, err
}

// getAlias loads a live (not deleted) alias of the account.
func (t *Tx) getAlias(ctx context.Context, accountID, id string) (Key, error) {
	k, err := getKey(ctx, t.tx, accountID, id)
	if err != nil {
		return k, err
	}
	if k.Type != KeyTypeAlias {
		return k, invalidField("id", "is the primary key; aliases only (use PATCH /v1/keys/{id} for the primary key)")
	}
	if k.Status == KeyRevoked {
		return k, ErrAliasGone
	}
	return k, nil
}

// UpdateAlias changes an alias's name, scopes, sites or expiry. A new future
// expiry (or none) revives an expired alias if a slot is free.
func (db *DB) UpdateAlias(ctx context.Context, actor Actor, accountID, id string, p AliasPatch) (Key, error) {
	if p.Name != nil && !ValidAliasName(*p.Name) {
		return Key{}, invalidField("name", "must be 1 to 50 letters, digits, spaces, '-' or '_'")
	}
	var err error
	if p.Scopes != nil {
		if p.Scopes, err = db.scopes.CheckRules(p.Scopes); err != nil {
			return Key{}, err
		}
	}
	if p.AllowedSites != nil {
		if p.AllowedSites, err = CheckSitePatterns(p.AllowedSites); err != nil {
			return Key{}, err
		}
	}
	if err := p.LimitsPatch.check(); err != nil {
		return Key{}, err
	}
	var out Key
	err = db.write(ctx, func(t *Tx) error {
		before, err := t.getAlias(ctx, accountID, id)
		if err != nil {
			return err
		}
		after := before
		if p.Name != nil {
			after.Name = *p.Name
		}
		if p.Scopes != nil {
			after.Scopes = p.Scopes
		}
		// Every change is checked against the primary's current scopes, so a
		// narrowed primary cannot be widened again through an alias.
		if err := t.checkScopesWithinPrimary(ctx, db.scopes, accountID, after.Scopes); err != nil {
			return err
		}
		if p.AllowedSites != nil {
			after.AllowedSites = p.AllowedSites
		}
		if p.SetExpiry {
			if err := t.checkExpiry(p.ExpiresAt); err != nil {
				return err
			}
			after.ExpiresAt = p.ExpiresAt
			// An alias that had expired comes back to life with its new expiry,
			// taking a slot again; a deactivated one stays deactivated.
			if before.Status != KeyInactive && before.StatusAt(t.now) == KeyExpired {
				if err := t.reserveAliasSlot(ctx, accountID); err != nil {
					return err
				}
				after.Status = KeyActive
			}
		}
		scopesJSON, _ := json.Marshal(after.Scopes)
		sitesJSON, _ := json.Marshal(after.AllowedSites)
		_, err = t.tx.ExecContext(ctx, `UPDATE keys SET name = ?, name_fold = ?, scopes = ?, allowed_sites = ?,
			expires_at = ?, status = ?, updated_at = ?,
			expiring_notified_at = CASE WHEN ? <> 0 THEN NULL ELSE expiring_notified_at END
			WHERE id = ?`,
			after.Name, FoldName(after.Name), string(scopesJSON), string(sitesJSON), nullTime(after.ExpiresAt),
			after.Status, t.now.Unix(), p.SetExpiry, id)
		if t.eng.UniqueViolation(err, "keys.account_id") {
			return ErrNameTaken
		}
		if err != nil {
			return fmt.Errorf("store: update alias: %w", err)
		}
		if err := t.setLimits(ctx, id, p.LimitsPatch); err != nil {
			return err
		}
		if out, err = getKey(ctx, t.tx, accountID, id); err != nil {
			return err
		}
		_, err = t.event(ctx, accountID, EventAliasUpdated, actor, id, aliasData(out, t.now))
		return err
	})
	return db.withLastUse(out), err
}

// UpdatePrimaryKey changes the primary key's name or narrows (or widens) its
// scopes. Aliases are not rewritten: their effective scopes are intersected
// with the primary's at validation time.
func (db *DB) UpdatePrimaryKey(ctx context.Context, actor Actor, accountID, id string, name *string, scopes []string) (Key, error) {
	return db.PatchPrimaryKey(ctx, actor, accountID, id, PrimaryPatch{Name: name, Scopes: scopes})
}

// PrimaryPatch changes the current primary key; nil fields stay as they are.
type PrimaryPatch struct {
	Name   *string
	Scopes []string
	LimitsPatch
}

// PatchPrimaryKey changes the primary key's name, scopes (see
// UpdatePrimaryKey) or limits.
func (db *DB) PatchPrimaryKey(ctx context.Context, actor Actor, accountID, id string, p PrimaryPatch) (Key, error) {
	name, scopes := p.Name, p.Scopes
	if err := p.LimitsPatch.check(); err != nil {
		return Key{}, err
	}
	if name != nil && !ValidAliasName(*name) {
		return Key{}, invalidField("name", "must be 1 to 50 letters, digits, spaces, '-' or '_'")
	}
	var err error
	if scopes != nil {
		if scopes, err = db.scopes.CheckRules(scopes); err != nil {
			return Key{}, err
		}
	}
	var out Key
	err = db.write(ctx, func(t *Tx) error {
		k, err := getKey(ctx, t.tx, accountID, id)
		if err != nil {
			return err
		}
		if k.Type != KeyTypePrimary {
			return invalidField("id", "is an alias; use PATCH /v1/aliases/{id}")
		}
		if k.StatusAt(t.now) != KeyActive || k.ValidUntil != nil {
			return invalidField("id", "is a retired primary key; only the current one can be changed")
		}
		if name != nil {
			k.Name = *name
		}
		if scopes != nil {
			k.Scopes = scopes
		}
		scopesJSON, _ := json.Marshal(k.Scopes)
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET name = ?, name_fold = ?, scopes = ?, updated_at = ? WHERE id = ?`,
			k.Name, FoldName(k.Name), string(scopesJSON), t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: update primary key: %w", err)
		}
		if err := t.setLimits(ctx, id, p.LimitsPatch); err != nil {
			return err
		}
		if out, err = getKey(ctx, t.tx, accountID, id); err != nil {
			return err
		}
		_, err = t.event(ctx, accountID, EventKeyUpdated, actor, id, KeyUpdatedData{
			AccountID: accountID, Hint: out.Hint, KeyID: id, Name: out.Name, Scopes: out.Scopes, SpendLimit: out.SpendLimit,
			Type: KeyTypePrimary,
		})
		return err
	})
	return db.withLastUse(out), err
}

// SetAliasStatus deactivates (active=false) or reactivates an alias.
// Reactivation needs a free slot and an expiry still ahead. Setting the status
// it already has changes nothing and emits nothing.
func (db *DB) SetAliasStatus(ctx context.Context, actor Actor, accountID, id string, active bool) (Key, error) {
	var out Key
	err := db.write(ctx, func(t *Tx) error {
		k, err := t.getAlias(ctx, accountID, id)
		if err != nil {
			return err
		}
		status, event := KeyInactive, EventAliasDeactivated
		if active {
			status, event = KeyActive, EventAliasReactivated
			if k.ExpiresAt != nil && !t.now.Before(*k.ExpiresAt) {
				return invalidField("expires_at", "the alias has expired; give it a new expiry with PATCH")
			}
		}
		if k.Status == status {
			out = k
			return nil
		}
		if active {
			if err := t.reserveAliasSlot(ctx, accountID); err != nil {
				return err
			}
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET status = ?, updated_at = ? WHERE id = ?`, status, t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: set alias status: %w", err)
		}
		if out, err = getKey(ctx, t.tx, accountID, id); err != nil {
			return err
		}
		_, err = t.event(ctx, accountID, event, actor, id, aliasData(out, t.now))
		return err
	})
	return db.withLastUse(out), err
}

// DeleteAlias kills an alias for ever: its key answers REVOKED from now on
// and its name is free again.
func (db *DB) DeleteAlias(ctx context.Context, actor Actor, accountID, id string) error {
	return db.write(ctx, func(t *Tx) error {
		k, err := t.getAlias(ctx, accountID, id)
		if err != nil {
			return err
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET status = 'revoked', updated_at = ? WHERE id = ?`, t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: delete alias: %w", err)
		}
		k.Status = KeyRevoked
		_, err = t.event(ctx, accountID, EventAliasDeleted, actor, id, aliasData(k, t.now))
		return err
	})
}

// ListAliases returns an account's aliases newest first, before the alias
// with id before (empty for the newest), at most limit; with a status
// (KeyActive, KeyInactive, KeyExpired or KeyRevoked, "" for all) only those
// whose status is that now. Status is Key.StatusAt's, the one rule, so it is
// applied here rather than in SQL: rows are read until limit are found.
func (db *DB) ListAliases(ctx context.Context, accountID, status, before string, limit int) ([]Key, error) {
	beforeRow := int64(1<<63 - 1)
	if before != "" {
		err := db.r.QueryRowContext(ctx, `SELECT rowid FROM keys WHERE id = ? AND account_id = ? AND type = 'alias'`,
			before, accountID).Scan(&beforeRow)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, invalidField("before", "is not an alias of this account")
		}
		if err != nil {
			return nil, err
		}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE account_id = ? AND type = 'alias' AND rowid < ? ORDER BY rowid DESC`, accountID, beforeRow)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	now := db.now()
	out := []Key{}
	for len(out) < limit && rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		if status == "" || k.StatusAt(now) == status {
			out = append(out, db.withLastUse(k))
		}
	}
	return out, rows.Err()
}

// ListExpiringAliases returns an account's active aliases that expire after
// now and no later than until, soonest first, at most limit.
func (db *DB) ListExpiringAliases(ctx context.Context, accountID string, until time.Time, limit int) ([]Key, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE account_id = ? AND type = 'alias' AND status = 'active' AND expires_at > ? AND expires_at <= ?
		ORDER BY expires_at, rowid LIMIT ?`, accountID, db.now().Unix(), until.Unix(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, db.withLastUse(k))
	}
	return out, rows.Err()
}

// GetAlias returns one alias of an account, deleted ones included; another
// account's key or a primary key is ErrNotFound.
func (db *DB) GetAlias(ctx context.Context, accountID, id string) (Key, error) {
	k, err := getKey(ctx, db.r, accountID, id)
	if err != nil {
		return Key{}, err
	}
	if k.Type != KeyTypeAlias {
		return Key{}, ErrNotFound
	}
	return db.withLastUse(k), nil
}
