package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxCredits bounds any credit amount so sums can never overflow.
const MaxCredits = 1_000_000_000_000

// NewAccount is what creating an account takes.
type NewAccount struct {
	Name    string
	Email   string
	Plan    string
	Credits int64
}

// Created is the answer to anything that makes a new key: the one and only
// time its plaintext is available.
type Created struct {
	Account Account
	Key     Key
	Secret  string // the plaintext key; never stored, never logged
}

const primaryKeyName = "Primary key"

// CreateAccount creates an account with its primary key.
func (db *DB) CreateAccount(ctx context.Context, actor Actor, in NewAccount) (Created, error) {
	var out Created
	err := db.write(ctx, func(t *Tx) error {
		var err error
		out, err = t.createAccount(ctx, actor, in, "", false)
		return err
	})
	return out, err
}

func (t *Tx) createAccount(ctx context.Context, actor Actor, in NewAccount, parentID string, synthetic bool) (Created, error) {
	if in.Credits < 0 || in.Credits > MaxCredits {
		return Created{}, invalidField("credits", fmt.Sprintf("must be between 0 and %d", int64(MaxCredits)))
	}
	if err := t.requirePlan(ctx, in.Plan); err != nil {
		return Created{}, err
	}
	id, _ := newID(prefixAccount)
	now := t.now.Unix()
	_, err := t.tx.ExecContext(ctx, `INSERT INTO accounts
		(id, name, email, plan, status, credits, last_topup, parent_id, synthetic, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?)`,
		id, in.Name, in.Email, in.Plan, in.Credits, in.Credits, nullString(parentID), synthetic, now, now)
	if err != nil {
		return Created{}, fmt.Errorf("store: insert account: %w", err)
	}
	secret, key, err := t.insertKey(ctx, id, KeyTypePrimary, primaryKeyName, []string{"*"}, nil, nil)
	if err != nil {
		return Created{}, err
	}
	acc, err := getAccount(ctx, t.tx, id)
	if err != nil {
		return Created{}, err
	}
	if _, err := t.event(ctx, id, EventAccountCreated, actor, id, AccountCreatedData{
		AccountID: id, Credits: in.Credits, Hint: key.Hint, KeyID: key.ID, Name: in.Name, ParentID: acc.ParentID, Plan: in.Plan,
	}); err != nil {
		return Created{}, err
	}
	return Created{Account: acc, Key: key, Secret: secret}, nil
}

// insertKey creates a key row and returns its plaintext, shown once.
func (t *Tx) insertKey(ctx context.Context, accountID, typ, name string, scopes, sites []string, expiresAt *time.Time) (string, Key, error) {
	if scopes == nil {
		scopes = []string{}
	}
	if sites == nil {
		sites = []string{}
	}
	scopesJSON, _ := json.Marshal(scopes)
	sitesJSON, _ := json.Marshal(sites)
	now := t.now.Unix()
	for attempt := 0; ; attempt++ {
		secret := NewKey()
		hash := HashKey(secret)
		id, _ := newID(prefixKey)
		_, err := t.tx.ExecContext(ctx, `INSERT INTO keys
			(id, account_id, type, name, name_fold, hint, hash, status, scopes, allowed_sites, expires_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)`,
			id, accountID, typ, name, FoldName(name), KeyHint(secret), hash[:], string(scopesJSON), string(sitesJSON),
			nullTime(expiresAt), now, now)
		if err != nil {
			// A clash of 119 random bits is not going to happen twice.
			if (t.eng.UniqueViolation(err, "keys.hash") || t.eng.UniqueViolation(err, "keys.id")) && attempt < 3 {
				continue
			}
			if t.eng.UniqueViolation(err, "keys.account_id") {
				return "", Key{}, ErrNameTaken
			}
			return "", Key{}, fmt.Errorf("store: insert key: %w", err)
		}
		key, err := getKey(ctx, t.tx, accountID, id)
		return secret, key, err
	}
}

// FoldName is the form of a name used to compare names ignoring case.
func FoldName(name string) string { return strings.ToLower(name) }

func (t *Tx) requirePlan(ctx context.Context, name string) error {
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM plans WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return &InvalidError{Message: fmt.Sprintf("plan %q does not exist", name),
			Fields: map[string]string{"plan": "unknown plan"}}
	}
	return nil
}

const accountColumns = `id, name, email, plan, status, credits, parent_id, alias_limit_override, created_at, updated_at, subaccount_limit_override`

func scanAccount(row interface{ Scan(...any) error }, extra ...any) (Account, error) {
	var (
		a                Account
		parent           sql.NullString
		override         sql.NullInt64
		created, updated int64
		subsOverride     sql.NullInt64
	)
	err := row.Scan(append([]any{&a.ID, &a.Name, &a.Email, &a.Plan, &a.Status, &a.Credits, &parent, &override, &created, &updated, &subsOverride}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, err
	}
	if parent.Valid {
		a.ParentID = &parent.String
	}
	if override.Valid {
		v := int(override.Int64)
		a.AliasLimitOverride = &v
	}
	if subsOverride.Valid {
		v := int(subsOverride.Int64)
		a.SubaccountLimitOverride = &v
	}
	a.CreatedAt = time.Unix(created, 0).UTC()
	a.UpdatedAt = time.Unix(updated, 0).UTC()
	return a, nil
}

func getAccount(ctx context.Context, q queryer, id string) (Account, error) {
	return scanAccount(q.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
}

// GetAccount returns one account.
func (db *DB) GetAccount(ctx context.Context, id string) (Account, error) {
	return getAccount(ctx, db.r, id)
}

// AccountQuery selects a page of accounts.
type AccountQuery struct {
	// Search keeps accounts whose name or email contains it, ignoring the
	// case of ASCII letters; "" keeps all.
	Search string
	// After is an account id: only accounts created after it (the next
	// page); "" starts at the first.
	After string
	Limit int
}

// likeEscaper makes text match itself in a LIKE pattern with ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// ListAccounts returns a page of accounts in creation order. An After that
// names no account is an error, not silently the first page.
func (db *DB) ListAccounts(ctx context.Context, q AccountQuery) ([]Account, error) {
	var after int64
	if q.After != "" {
		err := db.r.QueryRowContext(ctx, `SELECT rowid FROM accounts WHERE id = ?`, q.After).Scan(&after)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, invalidField("after", "is not an account id")
		}
		if err != nil {
			return nil, err
		}
	}
	// The search text is matched as it is: its '%', '_' and backslashes are
	// escaped. lower() on both sides, as LIKE is case-sensitive on
	// PostgreSQL.
	pattern := "%" + likeEscaper.Replace(q.Search) + "%"
	rows, err := db.r.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE rowid > ?
		AND (? = '' OR lower(name) LIKE lower(?) ESCAPE '\' OR lower(email) LIKE lower(?) ESCAPE '\')
		ORDER BY rowid LIMIT ?`, after, q.Search, pattern, pattern, q.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AccountPatch changes an account; nil fields stay as they are.
type AccountPatch struct {
	Plan   *string
	Status *string
	// AliasLimitOverride is applied when SetAliasLimit is true; nil clears it.
	SetAliasLimit      bool
	AliasLimitOverride *int
	// SubaccountLimitOverride is applied when SetSubaccountLimit is true; nil clears it.
	SetSubaccountLimit      bool
	SubaccountLimitOverride *int
}

// UpdateAccount applies an operator's change to an account.
func (db *DB) UpdateAccount(ctx context.Context, actor Actor, id string, p AccountPatch) (Account, error) {
	var out Account
	err := db.write(ctx, func(t *Tx) error {
		before, err := getAccount(ctx, t.tx, id)
		if err != nil {
			return err
		}
		changes := AccountUpdatedData{AccountID: id}
		if p.Plan != nil && *p.Plan != before.Plan {
			if err := t.requirePlan(ctx, *p.Plan); err != nil {
				return err
			}
			changes.Plan = p.Plan
		}
		if p.Status != nil {
			if *p.Status != AccountActive && *p.Status != AccountSuspended {
				return invalidField("status", "must be active or suspended")
			}
			// A suspension the parent made becomes the operator's when the
			// operator suspends too, so the parent can no longer lift it.
			var byParent bool
			if err := t.tx.QueryRowContext(ctx, `SELECT suspended_by IS NOT NULL FROM accounts WHERE id = ?`, id).Scan(&byParent); err != nil {
				return err
			}
			if *p.Status != before.Status || byParent {
				changes.Status = p.Status
			}
		}
		if p.SetAliasLimit {
			if p.AliasLimitOverride != nil && (*p.AliasLimitOverride < 0 || *p.AliasLimitOverride > 1_000_000) {
				return invalidField("alias_limit", "must be between 0 and 1000000, or null")
			}
			changes.AliasLimitOverride = changedTo(p.AliasLimitOverride)
		}
		if p.SetSubaccountLimit {
			if p.SubaccountLimitOverride != nil && (*p.SubaccountLimitOverride < 0 || *p.SubaccountLimitOverride > maxAliasOrSubaccountLimit) {
				return invalidField("subaccount_limit", "must be between 0 and 1000000, or null")
			}
			changes.SubaccountLimitOverride = changedTo(p.SubaccountLimitOverride)
		}
		if changes.Plan != nil || changes.Status != nil || changes.AliasLimitOverride.Set || changes.SubaccountLimitOverride.Set {
			_, err = t.tx.ExecContext(ctx, `UPDATE accounts SET
				plan = coalesce(?, plan), status = coalesce(?, status),
				suspended_by = CASE WHEN CAST(? AS TEXT) IS NULL THEN suspended_by END,
				alias_limit_override = CASE WHEN ? <> 0 THEN ? ELSE alias_limit_override END,
				subaccount_limit_override = CASE WHEN ? <> 0 THEN ? ELSE subaccount_limit_override END,
				updated_at = ? WHERE id = ?`,
				stringOrNil(changes.Plan), stringOrNil(changes.Status), stringOrNil(changes.Status), p.SetAliasLimit, intOrNil(p.AliasLimitOverride),
				p.SetSubaccountLimit, intOrNil(p.SubaccountLimitOverride), t.now.Unix(), id)
			if err != nil {
				return fmt.Errorf("store: update account: %w", err)
			}
			if _, err := t.event(ctx, id, EventAccountUpdated, actor, id, changes); err != nil {
				return err
			}
		}
		out, err = getAccount(ctx, t.tx, id)
		return err
	})
	return out, err
}

func stringOrNil(v *string) any {
	if v == nil {
		return nil
	}
	return *v
}

func intOrNil(v *int) any {
	if v == nil {
		return nil
	}
	return *v
}

// AliasUsage is how many alias slots an account uses and may use.
type AliasUsage struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// effectiveAliasLimit is the account's override, else its plan's limit, else
// zero (a plan whose limit is set per account, before the operator sets it).
func effectiveAliasLimit(ctx context.Context, q queryer, accountID string) (int, error) {
	var limit int
	err := q.QueryRowContext(ctx, `SELECT coalesce(a.alias_limit_override, p.alias_limit, 0)
		FROM accounts a JOIN plans p ON p.name = a.plan WHERE a.id = ?`, accountID).Scan(&limit)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return limit, err
}

// activeAliases counts the aliases that hold a slot at now: active and not
// past their expiry.
func activeAliases(ctx context.Context, q queryer, accountID string, now time.Time) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM keys WHERE account_id = ? AND type = 'alias'
		AND status = 'active' AND (expires_at IS NULL OR expires_at > ?)`, accountID, now.Unix()).Scan(&n)
	return n, err
}

// AliasSlots reports an account's alias usage against its limit.
func (db *DB) AliasSlots(ctx context.Context, accountID string) (AliasUsage, error) {
	limit, err := effectiveAliasLimit(ctx, db.r, accountID)
	if err != nil {
		return AliasUsage{}, err
	}
	used, err := activeAliases(ctx, db.r, accountID, db.now())
	return AliasUsage{Used: used, Limit: limit}, err
}

// SubaccountUsage is how many subaccounts an account has and may have.
type SubaccountUsage struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// effectiveSubaccountLimit is the account's override, else its plan's limit,
// else zero (a plan whose limit is set per account, before the operator sets
// it). A subaccount may have none: subaccounts do not nest.
func effectiveSubaccountLimit(ctx context.Context, q queryer, accountID string) (int, error) {
	var limit int
	err := q.QueryRowContext(ctx, `SELECT CASE WHEN a.parent_id IS NOT NULL THEN 0
		ELSE coalesce(a.subaccount_limit_override, p.subaccount_limit, 0) END
		FROM accounts a JOIN plans p ON p.name = a.plan WHERE a.id = ?`, accountID).Scan(&limit)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return limit, err
}

// countSubaccounts counts an account's subaccounts, suspended ones included:
// they keep their keys and credits, and unsuspending one takes no slot.
func countSubaccounts(ctx context.Context, q queryer, accountID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE parent_id = ?`, accountID).Scan(&n)
	return n, err
}

// SubaccountSlots reports an account's subaccounts against its limit.
func (db *DB) SubaccountSlots(ctx context.Context, accountID string) (SubaccountUsage, error) {
	limit, err := effectiveSubaccountLimit(ctx, db.r, accountID)
	if err != nil {
		return SubaccountUsage{}, err
	}
	used, err := countSubaccounts(ctx, db.r, accountID)
	return SubaccountUsage{Used: used, Limit: limit}, err
}
