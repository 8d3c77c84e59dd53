package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Subaccounts get credits allocated from their parent's pool, have their own
// primary key and aliases under the parent's plan, and can also buy credits
// of their own (AddCredits). They cannot have subaccounts themselves.

// CreateSubaccount creates a subaccount of parentID on the parent's plan,
// moving credits from the parent's pool.
func (db *DB) CreateSubaccount(ctx context.Context, actor Actor, parentID string, in NewAccount) (Created, error) {
	if in.Credits < 0 || in.Credits > MaxCredits {
		return Created{}, invalidField("credits", fmt.Sprintf("must be between 0 and %d", int64(MaxCredits)))
	}
	var out Created
	err := db.write(ctx, func(t *Tx) error {
		parent, err := getAccount(ctx, t.tx, parentID)
		if err != nil {
			return err
		}
		if parent.ParentID != nil {
			return ErrSubaccountNesting
		}
		// Counted inside the write transaction that adds the subaccount, so
		// concurrent requests can never exceed the limit.
		limit, err := effectiveSubaccountLimit(ctx, t.tx, parentID)
		if err != nil {
			return err
		}
		used, err := countSubaccounts(ctx, t.tx, parentID)
		if err != nil {
			return err
		}
		if used >= limit {
			return ErrSubaccountLimit
		}
		from, err := t.loadPool(ctx, parentID)
		if err != nil {
			return err
		}
		if err := t.moveCredits(ctx, &from, creditChange{delta: -in.Credits}); err != nil {
			return err
		}
		in.Plan = parent.Plan
		if out, err = t.createAccount(ctx, actor, in, parentID, false); err != nil {
			return err
		}
		sub := out.Account.ID
		if _, err := t.event(ctx, parentID, EventSubaccountCreated, actor, sub, SubaccountCreatedData{
			AccountID: parentID, Credits: in.Credits, Hint: out.Key.Hint, KeyID: out.Key.ID, Name: in.Name, Plan: in.Plan,
			SubaccountID: sub,
		}); err != nil {
			return err
		}
		if in.Credits > 0 {
			return t.allocationEvents(ctx, actor, parentID, sub, in.Credits, from.credits, out.Account.Credits)
		}
		return nil
	})
	return out, err
}

// allocationEvents tells both accounts about a move of credits between them.
func (t *Tx) allocationEvents(ctx context.Context, actor Actor, parentID, subID string, amount, parentCredits, subCredits int64) error {
	data := CreditsAllocatedData{Amount: amount, ParentCredits: parentCredits, ParentID: parentID,
		SubaccountCredits: subCredits, SubaccountID: subID}
	for _, id := range []string{parentID, subID} {
		data.AccountID = id
		if _, err := t.event(ctx, id, EventCreditsAllocated, actor, subID, data); err != nil {
			return err
		}
	}
	return nil
}

// AllocateCredits moves credits between a parent and one of its subaccounts:
// a positive amount from the parent's pool to the subaccount, a negative one
// back (at most what the subaccount still has).
func (db *DB) AllocateCredits(ctx context.Context, actor Actor, parentID, subID string, amount int64) (Account, error) {
	if amount == 0 || amount > MaxCredits || amount < -MaxCredits {
		return Account{}, invalidField("amount", fmt.Sprintf("must be a non-zero whole number between -%d and %d", int64(MaxCredits), int64(MaxCredits)))
	}
	var out Account
	err := db.write(ctx, func(t *Tx) error {
		sub, err := getAccount(ctx, t.tx, subID)
		if err != nil {
			return err
		}
		if sub.ParentID == nil || *sub.ParentID != parentID {
			return ErrNotFound
		}
		parentPool, err := t.loadPool(ctx, parentID)
		if err != nil {
			return err
		}
		subPool, err := t.loadPool(ctx, subID)
		if err != nil {
			return err
		}
		// Take first, so a short pool fails before anything moves.
		if amount > 0 {
			err = t.moveCredits(ctx, &parentPool, creditChange{delta: -amount})
			if err == nil {
				err = t.moveCredits(ctx, &subPool, creditChange{delta: amount, topup: true})
			}
		} else {
			err = t.moveCredits(ctx, &subPool, creditChange{delta: amount})
			if err == nil {
				err = t.moveCredits(ctx, &parentPool, creditChange{delta: -amount})
			}
		}
		if err != nil {
			return err
		}
		if err := t.allocationEvents(ctx, actor, parentID, subID, amount, parentPool.credits, subPool.credits); err != nil {
			return err
		}
		out, err = getAccount(ctx, t.tx, subID)
		return err
	})
	return out, err
}

// Subaccount is a subaccount with what it has left and has spent, and who
// suspended it: SuspendedParent when its parent did (and so may lift it),
// SuspendedOperator when the operator did; nil when it is active.
type Subaccount struct {
	Account
	CreditsSpent int64   `json:"credits_spent"`
	SuspendedBy  *string `json:"suspended_by"`
}

// Who suspended a subaccount, as Subaccount.SuspendedBy says it.
const (
	SuspendedParent   = "parent"
	SuspendedOperator = "operator"
)

const subaccountColumns = accountColumns + `, credits_spent, suspended_by`

func scanSubaccount(row interface{ Scan(...any) error }) (Subaccount, error) {
	var (
		s  Subaccount
		by sql.NullString
	)
	a, err := scanAccount(row, &s.CreditsSpent, &by)
	s.Account = a
	switch {
	case err != nil:
	case by.Valid:
		s.SuspendedBy = &by.String
	case a.Status == AccountSuspended:
		operator := SuspendedOperator
		s.SuspendedBy = &operator
	}
	return s, err
}

// getSubaccount loads subID if it is a subaccount of parentID; any other
// account is ErrNotFound.
func getSubaccount(ctx context.Context, q queryer, parentID, subID string) (Subaccount, error) {
	return scanSubaccount(q.QueryRowContext(ctx, `SELECT `+subaccountColumns+` FROM accounts
		WHERE id = ? AND parent_id = ?`, subID, parentID))
}

// GetSubaccount returns a parent's subaccount; any other account is
// ErrNotFound.
func (db *DB) GetSubaccount(ctx context.Context, parentID, subID string) (Subaccount, error) {
	return getSubaccount(ctx, db.r, parentID, subID)
}

// ListSubaccounts returns a parent's subaccounts newest first, before the
// subaccount with id before (empty for the newest), at most limit (0: all).
func (db *DB) ListSubaccounts(ctx context.Context, parentID, before string, limit int) ([]Subaccount, error) {
	beforeRow := int64(1<<63 - 1)
	if before != "" {
		err := db.r.QueryRowContext(ctx, `SELECT rowid FROM accounts WHERE id = ? AND parent_id = ?`,
			before, parentID).Scan(&beforeRow)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, invalidField("before", "is not a subaccount of this account")
		}
		if err != nil {
			return nil, err
		}
	}
	if limit <= 0 {
		limit = -1 // no limit
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+subaccountColumns+` FROM accounts
		WHERE parent_id = ? AND rowid < ? ORDER BY rowid DESC LIMIT ?`, parentID, beforeRow, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Subaccount{}
	for rows.Next() {
		s, err := scanSubaccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SuspendSubaccount suspends (suspend true) or unsuspends a parent's
// subaccount; every key of the subaccount answers ACCOUNT_SUSPENDED from the
// commit on. A parent lifts only a suspension it made: one the operator made
// is ErrSuspendedByOperator. Asking for the state the subaccount is in
// changes nothing and records nothing.
func (db *DB) SuspendSubaccount(ctx context.Context, actor Actor, parentID, subID string, suspend bool) (Subaccount, error) {
	var out Subaccount
	err := db.write(ctx, func(t *Tx) error {
		sub, err := getSubaccount(ctx, t.tx, parentID, subID)
		if err != nil {
			return err
		}
		status, by, event := AccountSuspended, any(SuspendedParent), EventSubaccountSuspended
		if !suspend {
			status, by, event = AccountActive, nil, EventSubaccountUnsuspended
		}
		if sub.Status == status {
			out = sub
			return nil
		}
		if !suspend && (sub.SuspendedBy == nil || *sub.SuspendedBy != SuspendedParent) {
			return ErrSuspendedByOperator
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE accounts SET status = ?, suspended_by = ?, updated_at = ? WHERE id = ?`,
			status, by, t.now.Unix(), subID); err != nil {
			return fmt.Errorf("store: suspend subaccount: %w", err)
		}
		// Both audit logs tell it; the subaccount's event also refreshes
		// its keys in the index.
		data := SubaccountStatusData{ParentID: parentID, Status: status, SubaccountID: subID}
		for _, id := range []string{parentID, subID} {
			data.AccountID = id
			if _, err := t.event(ctx, id, event, actor, subID, data); err != nil {
				return err
			}
		}
		out, err = getSubaccount(ctx, t.tx, parentID, subID)
		return err
	})
	return out, err
}

// ListSubaccountKeys returns the keys of a parent's subaccount as ListKeys
// does (never their secrets); any other account is ErrNotFound.
func (db *DB) ListSubaccountKeys(ctx context.Context, parentID, subID string) ([]Key, error) {
	if _, err := getSubaccount(ctx, db.r, parentID, subID); err != nil {
		return nil, err
	}
	return db.ListKeys(ctx, subID)
}
