package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Every credit movement goes through moveCredits inside one transaction, so
// the pool never goes below zero and credits.low is decided in one place.

// pool is an account's credit state as one transaction sees it.
type pool struct {
	accountID string
	credits   int64
	threshold sql.NullInt64 // the account's own low-credit threshold
	lastTopup int64
	armed     bool
}

// lowThreshold is where credits.low fires: the account's own threshold, or
// 10% of its last top-up or allocation.
func (p *pool) lowThreshold() int64 {
	if p.threshold.Valid {
		return p.threshold.Int64
	}
	return p.lastTopup / 10
}

func (t *Tx) loadPool(ctx context.Context, accountID string) (pool, error) {
	p := pool{accountID: accountID}
	st, err := t.prepared(ctx, `SELECT credits, low_credit_threshold, last_topup, low_credit_armed FROM accounts WHERE id = ?`)
	if err != nil {
		return p, err
	}
	err = st.QueryRowContext(ctx, accountID).Scan(&p.credits, &p.threshold, &p.lastTopup, &p.armed)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// creditChange is one movement of an account's pool.
type creditChange struct {
	delta int64 // added (positive) or taken (negative)
	spent int64 // units spent by keys, counted in credits_spent
	topup bool  // a purchase or allocation: sets the base of the default threshold
}

// moveCredits applies a change to p (already loaded in this transaction),
// refusing to go below zero or above MaxCredits, re-arming or sending
// credits.low as the pool crosses its threshold.
func (t *Tx) moveCredits(ctx context.Context, p *pool, c creditChange) error {
	after := p.credits + c.delta
	if after < 0 {
		return ErrInsufficientCredits
	}
	if after > MaxCredits {
		return invalidField("amount", fmt.Sprintf("a pool may hold at most %d credits", int64(MaxCredits)))
	}
	if c.topup && c.delta > 0 {
		p.lastTopup = c.delta
	}
	p.credits = after
	sendLow := p.rearmOrWarn(c.delta > 0)
	st, err := t.prepared(ctx, `UPDATE accounts SET credits = ?, credits_spent = credits_spent + ?,
		last_topup = ?, low_credit_armed = ?, updated_at = ? WHERE id = ?`)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, p.credits, c.spent, p.lastTopup, p.armed, t.now.Unix(), p.accountID); err != nil {
		return fmt.Errorf("store: move credits: %w", err)
	}
	t.setCredits(p.accountID, p.credits)
	if sendLow {
		return t.creditsLow(ctx, p)
	}
	return nil
}

// rearmOrWarn decides credits.low for a pool that just moved (up when
// increased): a pool back at or above its threshold is armed again; an armed
// pool below it is disarmed, and the caller sends credits.low (true).
func (p *pool) rearmOrWarn(increased bool) bool {
	switch threshold := p.lowThreshold(); {
	case p.credits >= threshold && increased:
		p.armed = true
	case p.credits < threshold && p.armed:
		p.armed = false
		return true
	}
	return false
}

func (t *Tx) creditsLow(ctx context.Context, p *pool) error {
	_, err := t.event(ctx, p.accountID, EventCreditsLow, SystemActor, p.accountID, CreditsLowData{
		AccountID: p.accountID, Credits: p.credits, Threshold: p.lowThreshold(),
	})
	return err
}

// spendCredits takes units from an account's pool in one statement, which
// checks and charges atomically in the database. found is false when the
// pool is short (nothing is charged).
func (t *Tx) spendCredits(ctx context.Context, accountID string, units int64) (p pool, found bool, err error) {
	st, err := t.prepared(ctx, `UPDATE accounts SET credits = credits - ?1, credits_spent = credits_spent + ?1, updated_at = ?2
		WHERE id = ?3 AND credits >= ?1 RETURNING credits, low_credit_threshold, last_topup, low_credit_armed`)
	if err != nil {
		return p, false, err
	}
	p.accountID = accountID
	err = st.QueryRowContext(ctx, units, t.now.Unix(), accountID).Scan(&p.credits, &p.threshold, &p.lastTopup, &p.armed)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("store: spend credits: %w", err)
	}
	t.setCredits(accountID, p.credits)
	if p.rearmOrWarn(false) {
		st, err := t.prepared(ctx, `UPDATE accounts SET low_credit_armed = 0 WHERE id = ?`)
		if err != nil {
			return p, false, err
		}
		if _, err := st.ExecContext(ctx, accountID); err != nil {
			return p, false, fmt.Errorf("store: disarm credits.low: %w", err)
		}
		return p, true, t.creditsLow(ctx, &p)
	}
	return p, true, nil
}

// AddCredits adds amount (negative for a correction) to an account's pool on
// the operator's behalf: a purchase, a refund or a correction. It works for
// subaccounts too. The pool never goes below zero.
func (db *DB) AddCredits(ctx context.Context, actor Actor, id string, amount int64, reason string) (Account, error) {
	if amount == 0 || amount > MaxCredits || amount < -MaxCredits {
		return Account{}, invalidField("amount", fmt.Sprintf("must be a non-zero whole number between -%d and %d", int64(MaxCredits), int64(MaxCredits)))
	}
	var out Account
	err := db.write(ctx, func(t *Tx) error {
		p, err := t.loadPool(ctx, id)
		if err != nil {
			return err
		}
		if err := t.moveCredits(ctx, &p, creditChange{delta: amount, topup: true}); err != nil {
			return err
		}
		if _, err := t.event(ctx, id, EventCreditsAdded, actor, id, CreditsAddedData{
			AccountID: id, Amount: amount, Credits: p.credits, Reason: reason,
		}); err != nil {
			return err
		}
		out, err = getAccount(ctx, t.tx, id)
		return err
	})
	return out, err
}

// SetLowCreditThreshold sets where credits.low fires; nil goes back to 10%
// of the last top-up or allocation. It re-arms the warning.
func (db *DB) SetLowCreditThreshold(ctx context.Context, actor Actor, id string, threshold *int64) error {
	if threshold != nil && (*threshold < 0 || *threshold > MaxCredits) {
		return invalidField("low_credit_threshold", fmt.Sprintf("must be between 0 and %d, or null", int64(MaxCredits)))
	}
	return db.write(ctx, func(t *Tx) error {
		res, err := t.tx.ExecContext(ctx, `UPDATE accounts SET low_credit_threshold = ?, low_credit_armed = 1, updated_at = ? WHERE id = ?`,
			nullInt64(threshold), t.now.Unix(), id)
		if err != nil {
			return fmt.Errorf("store: set threshold: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = t.event(ctx, id, EventAccountUpdated, actor, id, AccountUpdatedData{AccountID: id, LowCreditThreshold: changedTo(threshold)})
		return err
	})
}

func nullInt64(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

// CreditInfo is an account's pool as its owner sees it.
type CreditInfo struct {
	Credits            int64  `json:"credits"`
	Spent              int64  `json:"credits_spent"`
	LowCreditThreshold int64  `json:"low_credit_threshold"`
	ThresholdSource    string `json:"low_credit_threshold_source"` // "account" or "default"
}

// GetCreditInfo reads an account's pool.
func (db *DB) GetCreditInfo(ctx context.Context, id string) (CreditInfo, error) {
	var (
		p     pool
		spent int64
	)
	err := db.r.QueryRowContext(ctx, `SELECT credits, credits_spent, low_credit_threshold, last_topup FROM accounts WHERE id = ?`, id).
		Scan(&p.credits, &spent, &p.threshold, &p.lastTopup)
	if errors.Is(err, sql.ErrNoRows) {
		return CreditInfo{}, ErrNotFound
	}
	source := "default"
	if p.threshold.Valid {
		source = "account"
	}
	return CreditInfo{Credits: p.credits, Spent: spent, LowCreditThreshold: p.lowThreshold(), ThresholdSource: source}, err
}
