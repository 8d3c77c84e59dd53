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
		p          Plan
		limit, rpm sql.NullInt64
		updated    int64
	)
	if err := row.Scan(&p.Name, &limit, &rpm, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, ErrNotFound
		}
		return p, err
	}
	if limit.Valid {
		v := int(limit.Int64)
		p.AliasLimit = &v
	}
	if rpm.Valid {
		v := int(rpm.Int64)
		p.RateLimitPerMinute = &v
	}
	p.UpdatedAt = time.Unix(updated, 0).UTC()
	return p, nil
}

func listPlans(ctx context.Context, q queryer) ([]Plan, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, alias_limit, rate_limit_per_minute, updated_at FROM plans ORDER BY rowid`)
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
	return scanPlan(db.r.QueryRowContext(ctx, `SELECT name, alias_limit, rate_limit_per_minute, updated_at FROM plans WHERE name = ?`, name))
}

var planNamePattern = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// ValidPlanName reports whether name can name a plan: 1 to 32 lower-case
// letters, digits, '-' or '_' (it appears in URLs).
func ValidPlanName(name string) bool { return planNamePattern.MatchString(name) }

// PutPlan creates or replaces a plan's limits.
func (db *DB) PutPlan(ctx context.Context, actor Actor, p Plan) (Plan, error) {
	if !ValidPlanName(p.Name) {
		return Plan{}, invalidField("name", "must be 1 to 32 lower-case letters, digits, '-' or '_'")
	}
	if p.AliasLimit != nil && (*p.AliasLimit < 0 || *p.AliasLimit > 1_000_000) {
		return Plan{}, invalidField("alias_limit", "must be between 0 and 1000000, or null for per-account limits")
	}
	if p.RateLimitPerMinute != nil && (*p.RateLimitPerMinute < 1 || *p.RateLimitPerMinute > 100_000_000) {
		return Plan{}, invalidField("rate_limit_per_minute", "must be between 1 and 100000000, or null for unlimited")
	}
	var out Plan
	err := db.write(ctx, func(t *Tx) error {
		now := t.now.Unix()
		_, err := t.tx.ExecContext(ctx, `INSERT INTO plans (name, alias_limit, rate_limit_per_minute, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET alias_limit = excluded.alias_limit,
				rate_limit_per_minute = excluded.rate_limit_per_minute, updated_at = excluded.updated_at`,
			p.Name, intOrNil(p.AliasLimit), intOrNil(p.RateLimitPerMinute), now, now)
		if err != nil {
			return fmt.Errorf("store: put plan: %w", err)
		}
		if _, err := t.event(ctx, "", EventPlanUpdated, actor, p.Name, map[string]any{
			"name": p.Name, "alias_limit": p.AliasLimit, "rate_limit_per_minute": p.RateLimitPerMinute,
		}); err != nil {
			return err
		}
		out, err = scanPlan(t.tx.QueryRowContext(ctx, `SELECT name, alias_limit, rate_limit_per_minute, updated_at FROM plans WHERE name = ?`, p.Name))
		return err
	})
	return out, err
}
