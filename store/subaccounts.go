package store

import (
	"context"
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
		if _, err := t.event(ctx, parentID, EventSubaccountCreated, actor, sub, map[string]any{
			"account_id": parentID, "subaccount_id": sub, "name": in.Name, "plan": in.Plan,
			"credits": in.Credits, "key_id": out.Key.ID, "hint": out.Key.Hint,
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
	data := map[string]any{"parent_id": parentID, "subaccount_id": subID, "amount": amount,
		"parent_credits": parentCredits, "subaccount_credits": subCredits}
	for _, id := range []string{parentID, subID} {
		data["account_id"] = id
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

// Subaccount is a subaccount with what it has left and has spent.
type Subaccount struct {
	Account
	CreditsSpent int64 `json:"credits_spent"`
}

// ListSubaccounts returns a parent's subaccounts, oldest first.
func (db *DB) ListSubaccounts(ctx context.Context, parentID string) ([]Subaccount, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+accountColumns+`, credits_spent FROM accounts
		WHERE parent_id = ? ORDER BY rowid`, parentID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Subaccount{}
	for rows.Next() {
		var s Subaccount
		if s.Account, err = scanAccount(rows, &s.CreditsSpent); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
