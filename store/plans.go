package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
)

func scanPlan(row interface{ Scan(...any) error }) (Plan, error) {
	var (
		p                Plan
		limit, subs, rpm sql.NullInt64
		updated          int64
	)
	if err := row.Scan(&p.Name, &limit, &subs, &rpm, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, ErrNotFound
		}
		return p, err
	}
	if limit.Valid {
		v := int(limit.Int64)
		p.AliasLimit = &v
	}
	if subs.Valid {
		v := int(subs.Int64)
		p.SubaccountLimit = &v
	}
	if rpm.Valid {
		v := int(rpm.Int64)
		p.RateLimitPerMinute = &v
	}
	p.UpdatedAt = time.Unix(updated, 0).UTC()
	return p, nil
}

const planColumns = `name, alias_limit, subaccount_limit, rate_limit_per_minute, updated_at`

func getPlan(ctx context.Context, q queryer, name string) (Plan, error) {
	return scanPlan(q.QueryRowContext(ctx, `SELECT `+planColumns+` FROM plans WHERE name = ?`, name))
}

func listPlans(ctx context.Context, q queryer) ([]Plan, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+planColumns+` FROM plans ORDER BY rowid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Plan
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ListPlans returns every plan.
func (db *DB) ListPlans(ctx context.Context) ([]Plan, error) { return listPlans(ctx, db.r) }

// GetPlan returns one plan.
func (db *DB) GetPlan(ctx context.Context, name string) (Plan, error) {
	return getPlan(ctx, db.r, name)
}

var planNamePattern = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// ValidPlanName reports whether name can name a plan: 1 to 32 lower-case
// letters, digits, '-' or '_' (it appears in URLs).
func ValidPlanName(name string) bool { return planNamePattern.MatchString(name) }

var errBadPlanName = invalidField("name", "must be 1 to 32 lower-case letters, digits, '-' or '_'")

// Bounds of a plan's limits; nil is the explicit "none" of each (see Plan).
const (
	maxAliasOrSubaccountLimit = 1_000_000
	maxRateLimitPerMinute     = 100_000_000
)

// checkPlanLimits refuses limits out of range. The messages use the words
// the admin API and the command line take for "none".
func checkPlanLimits(p Plan) error {
	if p.AliasLimit != nil && (*p.AliasLimit < 0 || *p.AliasLimit > maxAliasOrSubaccountLimit) {
		return invalidField("alias_limit", `must be between 0 and 1000000, or "per-account"`)
	}
	if p.SubaccountLimit != nil && (*p.SubaccountLimit < 0 || *p.SubaccountLimit > maxAliasOrSubaccountLimit) {
		return invalidField("subaccount_limit", `must be between 0 and 1000000, or "per-account"`)
	}
	if p.RateLimitPerMinute != nil && (*p.RateLimitPerMinute < 1 || *p.RateLimitPerMinute > maxRateLimitPerMinute) {
		return invalidField("rate_limit_per_minute", `must be between 1 and 100000000, or "unlimited"`)
	}
	return nil
}

// PutPlan creates a plan, or replaces every limit of an existing one, with
// exactly the limits in p: a nil limit is the plan's explicit "none". To
// change some limits of an existing plan and keep the others, use UpdatePlan.
func (db *DB) PutPlan(ctx context.Context, actor Actor, p Plan) (Plan, error) {
	if !ValidPlanName(p.Name) {
		return Plan{}, errBadPlanName
	}
	if err := checkPlanLimits(p); err != nil {
		return Plan{}, err
	}
	var out Plan
	err := db.write(ctx, func(t *Tx) error {
		var err error
		out, err = t.putPlan(ctx, actor, p)
		return err
	})
	return out, err
}

// PlanLimit is a new value for one of a plan's limits. Set false keeps the
// plan's value; a nil Value sets the limit's explicit "none".
type PlanLimit struct {
	Set   bool
	Value *int
}

// PlanChange is what UpdatePlan changes in a plan.
type PlanChange struct {
	AliasLimit, SubaccountLimit, RateLimitPerMinute PlanLimit
}

// Complete reports whether the change sets every limit, as creating a plan needs.
func (c PlanChange) Complete() bool {
	return c.AliasLimit.Set && c.SubaccountLimit.Set && c.RateLimitPerMinute.Set
}

// Plan is the change as a whole plan, for creating one.
func (c PlanChange) Plan(name string) Plan {
	return Plan{Name: name, AliasLimit: c.AliasLimit.Value, SubaccountLimit: c.SubaccountLimit.Value,
		RateLimitPerMinute: c.RateLimitPerMinute.Value}
}

// UpdatePlan changes the limits of an existing plan that ch sets and keeps
// the others. An unknown name is ErrNotFound: a mistyped name must not
// create a plan (PutPlan creates).
func (db *DB) UpdatePlan(ctx context.Context, actor Actor, name string, ch PlanChange) (Plan, error) {
	if !ValidPlanName(name) {
		return Plan{}, errBadPlanName
	}
	if err := checkPlanLimits(ch.Plan(name)); err != nil {
		return Plan{}, err // a bad value is a bad value, whether the plan exists or not
	}
	var out Plan
	err := db.write(ctx, func(t *Tx) error {
		p, err := getPlan(ctx, t.tx, name)
		if err != nil {
			return err
		}
		for _, l := range []struct {
			change PlanLimit
			limit  **int
		}{{ch.AliasLimit, &p.AliasLimit}, {ch.SubaccountLimit, &p.SubaccountLimit}, {ch.RateLimitPerMinute, &p.RateLimitPerMinute}} {
			if l.change.Set {
				*l.limit = l.change.Value
			}
		}
		if !ch.AliasLimit.Set && !ch.SubaccountLimit.Set && !ch.RateLimitPerMinute.Set {
			out = p
			return nil
		}
		out, err = t.putPlan(ctx, actor, p)
		return err
	})
	return out, err
}

func (t *Tx) putPlan(ctx context.Context, actor Actor, p Plan) (Plan, error) {
	now := t.now.Unix()
	_, err := t.tx.ExecContext(ctx, `INSERT INTO plans (name, alias_limit, subaccount_limit, rate_limit_per_minute, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET alias_limit = excluded.alias_limit, subaccount_limit = excluded.subaccount_limit,
			rate_limit_per_minute = excluded.rate_limit_per_minute, updated_at = excluded.updated_at`,
		p.Name, intOrNil(p.AliasLimit), intOrNil(p.SubaccountLimit), intOrNil(p.RateLimitPerMinute), now, now)
	if err != nil {
		return Plan{}, fmt.Errorf("store: put plan: %w", err)
	}
	if _, err := t.event(ctx, "", EventPlanUpdated, actor, p.Name, PlanUpdatedData{
		AliasLimit: p.AliasLimit, Name: p.Name, RateLimitPerMinute: p.RateLimitPerMinute, SubaccountLimit: p.SubaccountLimit,
	}); err != nil {
		return Plan{}, err
	}
	return getPlan(ctx, t.tx, p.Name)
}
