package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"keyd/store/keyindex"
)

// A key may cap what it spends of its account's shared pool: an agency
// hands a client site an alias and limits what that site can use. The limit
// is checked in the same transaction as the pool (see spendBatch), so
// concurrent charges can never spend past it.

// Spend periods: a UTC day, a UTC month, or the key's whole life.
const (
	PeriodDay   = keyindex.PeriodDay
	PeriodMonth = keyindex.PeriodMonth
	PeriodTotal = keyindex.PeriodTotal
)

// SpendLimit is a key's cap: Limit units per Period.
type SpendLimit struct {
	Limit  int64  `json:"limit"`
	Period string `json:"period"`
}

// checkSpendLimit refuses a limit out of bounds or with an unknown period.
func checkSpendLimit(l *SpendLimit) error {
	if l == nil {
		return nil
	}
	if l.Limit < 1 || l.Limit > MaxCredits {
		return invalidField("spend_limit", fmt.Sprintf("limit must be a whole number from 1 to %d", int64(MaxCredits)))
	}
	switch l.Period {
	case PeriodDay, PeriodMonth, PeriodTotal:
		return nil
	}
	return invalidField("spend_limit", "period must be day, month or total")
}

// Allowance is a key's spend limit with what it has spent in the current
// period, as the usage, validate and key answers show it.
type Allowance struct {
	Limit     int64      `json:"limit"`
	Period    string     `json:"period"`
	Spent     int64      `json:"spent"`
	Remaining int64      `json:"remaining"`
	ResetsAt  *time.Time `json:"resets_at"` // null for a total limit
}

// periodStart is the start (unix seconds, UTC) of the period holding now;
// 0 for a total limit.
func periodStart(period string, now time.Time) int64 {
	now = now.UTC()
	switch period {
	case PeriodDay:
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).Unix()
	case PeriodMonth:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
	}
	return 0
}

// periodEnd is when the period that began at start ends; nil for total.
func periodEnd(period string, start int64) *time.Time {
	var end time.Time
	switch period {
	case PeriodDay:
		end = time.Unix(start, 0).UTC().AddDate(0, 0, 1)
	case PeriodMonth:
		end = time.Unix(start, 0).UTC().AddDate(0, 1, 0)
	default:
		return nil
	}
	return &end
}

// spendState is what a limited key spent in the period that began at start.
type spendState struct {
	start, spent int64
}

// spentAt is what was spent in the period holding now: nothing when the
// state is of an earlier period.
func (s spendState) spentAt(period string, now time.Time) int64 {
	if s.start != periodStart(period, now) {
		return 0
	}
	return s.spent
}

func makeAllowance(l SpendLimit, spent int64, start int64) Allowance {
	return Allowance{Limit: l.Limit, Period: l.Period, Spent: spent, Remaining: max(l.Limit-spent, 0),
		ResetsAt: periodEnd(l.Period, start)}
}

// allowanceAt is the allowance of a key with limit l and state s at now.
func allowanceAt(l SpendLimit, s spendState, now time.Time) Allowance {
	return makeAllowance(l, s.spentAt(l.Period, now), periodStart(l.Period, now))
}

// LimitsPatch changes a key's limits; a field not Set stays as it is, a Set
// one with nil removes the limit.
type LimitsPatch struct {
	SetSpendLimit bool
	SpendLimit    *SpendLimit

	SetMaxSites bool
	MaxSites    *int // how many sites may use the key (see UseSite)

	SetReleaseAfter bool
	ReleaseAfter    *time.Duration // frees a site's slot when not seen for this long
}

// limits is every limit k has, as a patch that sets them on another key.
func (k *Key) limits() LimitsPatch {
	return LimitsPatch{SetSpendLimit: true, SpendLimit: k.SpendLimit, SetMaxSites: true, MaxSites: k.MaxSites,
		SetReleaseAfter: true, ReleaseAfter: k.ReleaseAfter}
}

func (p LimitsPatch) check() error {
	if err := checkSpendLimit(p.SpendLimit); err != nil {
		return err
	}
	if p.MaxSites != nil && (*p.MaxSites < 1 || *p.MaxSites > MaxSitesLimit) {
		return invalidField("max_sites", fmt.Sprintf("must be a whole number from 1 to %d, or null", MaxSitesLimit))
	}
	if p.ReleaseAfter != nil && (*p.ReleaseAfter < ReleaseAfter.Min || *p.ReleaseAfter > ReleaseAfter.Max) {
		return invalidField("release_after", "must be "+ReleaseAfter.Range+", or null")
	}
	return nil
}

// setLimits writes the limits p sets on key id.
func (t *Tx) setLimits(ctx context.Context, id string, p LimitsPatch) error {
	if p.SetSpendLimit {
		var limit, period any
		if p.SpendLimit != nil {
			limit, period = p.SpendLimit.Limit, p.SpendLimit.Period
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET spend_limit = ?, spend_period = ?, updated_at = ? WHERE id = ?`,
			limit, period, t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: set spend limit: %w", err)
		}
	}
	if p.SetMaxSites {
		var n any
		if p.MaxSites != nil {
			n = *p.MaxSites
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET max_sites = ?, updated_at = ? WHERE id = ?`, n, t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: set max_sites: %w", err)
		}
	}
	if p.SetReleaseAfter {
		var secs any
		if p.ReleaseAfter != nil {
			secs = int64(*p.ReleaseAfter / time.Second)
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE keys SET release_after = ?, updated_at = ? WHERE id = ?`, secs, t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: set release_after: %w", err)
		}
	}
	return nil
}

// keySpend reads what the key spent and the period key.spend_limit_reached
// last went out for (-1 for never).
func (t *Tx) keySpend(ctx context.Context, keyID string) (s spendState, notified int64, err error) {
	st, err := t.prepared(ctx, `SELECT period_start, spent, coalesce(notified_period, -1) FROM key_spend WHERE key_id = ?`)
	if err != nil {
		return s, -1, err
	}
	err = st.QueryRowContext(ctx, keyID).Scan(&s.start, &s.spent, &notified)
	if errors.Is(err, sql.ErrNoRows) {
		return spendState{start: -1}, -1, nil
	}
	return s, notified, err
}

// spendWithinLimit charges r's units to its key's period count when the
// limit allows it and chargePool has taken them from the pool. It returns
// the allowance after the charge, or a refusal that charged nothing: a
// *KeySpendLimitError, or ErrInsufficientCredits when chargePool found the
// pool short. Any other error fails the transaction.
func (t *Tx) spendWithinLimit(ctx context.Context, r *spendRequest, chargePool func() (bool, error)) (Allowance, error) {
	l := r.limit
	s, notified, err := t.keySpend(ctx, r.keyID)
	if err != nil {
		return Allowance{}, err
	}
	start := periodStart(l.Period, t.now)
	spent := s.spentAt(l.Period, t.now)
	if s.start != start {
		notified = -1
	}
	if spent+r.units > l.Limit {
		a := makeAllowance(l, spent, start)
		if notified != start {
			if err := t.spendLimitReached(ctx, r, a, start); err != nil {
				return a, err
			}
		}
		return a, &KeySpendLimitError{Allowance: a}
	}
	if charged, err := chargePool(); err != nil || !charged {
		return Allowance{}, cmp.Or(err, ErrInsufficientCredits)
	}
	spent += r.units
	st, err := t.prepared(ctx, `INSERT INTO key_spend (key_id, period_start, spent, notified_period) VALUES (?1, ?2, ?3, NULL)
		ON CONFLICT (key_id) DO UPDATE SET spent = ?3,
			notified_period = CASE WHEN key_spend.period_start = ?2 THEN key_spend.notified_period END, period_start = ?2`)
	if err != nil {
		return Allowance{}, err
	}
	if _, err := st.ExecContext(ctx, r.keyID, start, spent); err != nil {
		return Allowance{}, fmt.Errorf("store: count key spend: %w", err)
	}
	t.keySpent[r.keyPos] = spendState{start: start, spent: spent}
	a := makeAllowance(l, spent, start)
	if spent == l.Limit && notified != start {
		err = t.spendLimitReached(ctx, r, a, start)
	}
	return a, err
}

// spendLimitReached sends key.spend_limit_reached for the period that
// began at start and notes that it went out.
func (t *Tx) spendLimitReached(ctx context.Context, r *spendRequest, a Allowance, start int64) error {
	k, err := getKey(ctx, t.tx, r.accountID, r.keyID)
	if err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO key_spend (key_id, period_start, spent, notified_period) VALUES (?1, ?2, 0, ?2)
		ON CONFLICT (key_id) DO UPDATE SET notified_period = ?2,
			spent = CASE WHEN key_spend.period_start = ?2 THEN key_spend.spent ELSE 0 END, period_start = ?2`, r.keyID, start); err != nil {
		return fmt.Errorf("store: note spend limit: %w", err)
	}
	_, err = t.event(ctx, r.accountID, EventKeySpendLimitReached, SystemActor, r.keyID, KeySpendLimitReachedData{
		AccountID: r.accountID, Hint: k.Hint, KeyID: k.ID, Name: k.Name, SpendLimit: a, Type: k.Type,
	})
	return err
}
