package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"sort"
	"time"
)

// AuditEntry is one event as the audit log shows it.
type AuditEntry struct {
	ID string `json:"id"`
	// Sequence is the event's place among the account's events, as its
	// webhook payload carries it.
	Sequence  int64           `json:"sequence"`
	Action    string          `json:"action"`
	Actor     AuditActor      `json:"actor"`
	TargetID  *string         `json:"target_id"`
	IP        *string         `json:"ip"`
	Data      json.RawMessage `json:"data"`
	CreatedAt EventTime       `json:"created_at"`
}

// AuditActor is who did it: a key (with its type), the operator or keyd.
type AuditActor struct {
	Type  string  `json:"type"`
	KeyID *string `json:"key_id"`
	// Channel is "console" for the owner console; nil for the HTTP API,
	// the command line and keyd's own jobs.
	Channel *string `json:"channel"`
}

// ListAudit returns an account's events newest first, before the event with
// id before (empty for the newest), at most limit.
func (db *DB) ListAudit(ctx context.Context, accountID, before string, limit int) ([]AuditEntry, error) {
	return db.ListAuditOfKey(ctx, accountID, "", before, limit)
}

// ListAuditOfKey is ListAudit narrowed to the events about the key keyID
// (those whose target it is); "" is every event.
func (db *DB) ListAuditOfKey(ctx context.Context, accountID, keyID, before string, limit int) ([]AuditEntry, error) {
	beforeSeq := int64(1<<63 - 1)
	if before != "" {
		n, err := parseID(prefixEvent, before)
		if err != nil {
			return nil, invalidField("before", "is not an event id")
		}
		beforeSeq = int64(n)
	}
	const columns = `SELECT seq, account_seq, type, actor_type, actor_id, actor_ip, target_id, data, created_at_ms, channel FROM events`
	var (
		rows *sql.Rows
		err  error
	)
	if keyID == "" {
		rows, err = db.r.QueryContext(ctx, columns+` WHERE account_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, accountID, beforeSeq, limit)
	} else { // events_target (migration 0010) finds them without reading the others
		rows, err = db.r.QueryContext(ctx, columns+` WHERE account_id = ? AND target_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
			accountID, keyID, beforeSeq, limit)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var (
			e                   AuditEntry
			seq, created        int64
			actorID, ip, target sql.NullString
			channel             sql.NullString
			data                string
		)
		if err := rows.Scan(&seq, &e.Sequence, &e.Action, &e.Actor.Type, &actorID, &ip, &target, &data, &created, &channel); err != nil {
			return nil, err
		}
		e.ID = formatID(prefixEvent, uint64(seq))
		e.Actor.KeyID, e.IP, e.TargetID = stringPtr(actorID), stringPtr(ip), stringPtr(target)
		e.Actor.Channel = stringPtr(channel)
		e.Data = json.RawMessage(data)
		e.CreatedAt = EventTime(eventTimeFromMillis(created))
		out = append(out, e)
	}
	return out, rows.Err()
}

func stringPtr(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	return &v.String
}

// SiteSeen is a site that used a key, as plugins reported it.
type SiteSeen struct {
	Site          string    `json:"site"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	Plugin        string    `json:"plugin"`
	PluginVersion string    `json:"plugin_version"`
	WPVersion     string    `json:"wp_version"`
	// HoldsSlot is true for a site holding one of the key's max_sites
	// slots (its host does).
	HoldsSlot bool `json:"holds_slot"`
}

// ListKeySites returns the sites seen using a key of the account, most
// recently seen first. Reports still in memory appear after the next flush;
// a site holding a slot is listed at once (as its host, until its report
// is flushed).
func (db *DB) ListKeySites(ctx context.Context, accountID, keyID string) ([]SiteSeen, error) {
	if _, err := getKey(ctx, db.r, accountID, keyID); err != nil {
		return nil, err
	}
	slots, err := db.r.QueryContext(ctx, `SELECT host, activated_at, last_seen FROM key_activations WHERE key_id = ? ORDER BY activated_at, host`, keyID)
	if err != nil {
		return nil, err
	}
	var active []SiteSeen
	for slots.Next() {
		var (
			s           SiteSeen
			first, last int64
		)
		if err := slots.Scan(&s.Site, &first, &last); err != nil {
			slots.Close()
			return nil, err
		}
		if num, err := parseID(prefixKey, keyID); err == nil {
			last = max(last, db.sites.lastSeen(num, s.Site))
		}
		s.FirstSeen, s.LastSeen, s.HoldsSlot = time.Unix(first, 0).UTC(), time.Unix(last, 0).UTC(), true
		active = append(active, s)
	}
	slots.Close()
	if err := slots.Err(); err != nil {
		return nil, err
	}
	reported, err := db.reportedKeySites(ctx, keyID)
	if err != nil {
		return nil, err
	}
	for i := range reported {
		for j := range active {
			if active[j].Site != "" && SiteHost(reported[i].Site) == active[j].Site {
				reported[i].HoldsSlot = true
				active[j].Site = "" // listed by its report
			}
		}
	}
	for _, s := range active {
		if s.Site != "" {
			reported = append(reported, s)
		}
	}
	return reported, nil
}

// reportedKeySites are the sites plugins reported using a key.
func (db *DB) reportedKeySites(ctx context.Context, keyID string) ([]SiteSeen, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT site, first_seen, last_seen, plugin, plugin_version, wp_version
		FROM key_sites WHERE key_id = ? ORDER BY last_seen DESC, site LIMIT 1000`, keyID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SiteSeen{}
	for rows.Next() {
		var (
			s           SiteSeen
			first, last int64
		)
		if err := rows.Scan(&s.Site, &first, &last, &s.Plugin, &s.PluginVersion, &s.WPVersion); err != nil {
			return nil, err
		}
		s.FirstSeen, s.LastSeen = time.Unix(first, 0).UTC(), time.Unix(last, 0).UTC()
		out = append(out, s)
	}
	return out, rows.Err()
}

// UsageRow is one key's activity on one UTC day.
type UsageRow struct {
	KeyID             string `json:"key_id"`
	Day               string `json:"day"`
	Validations       int64  `json:"validations"`
	FailedValidations int64  `json:"failed_validations"`
	Units             int64  `json:"units"`
}

// ListUsage returns per key, per day counters of an account between from and
// to (inclusive, YYYY-MM-DD), optionally for one key.
func (db *DB) ListUsage(ctx context.Context, accountID, from, to, keyID string) ([]UsageRow, error) {
	if keyID != "" {
		if _, err := getKey(ctx, db.r, accountID, keyID); err != nil {
			return nil, err
		}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT u.key_id, u.day, u.validations, u.failed, u.units
		FROM key_usage_daily u JOIN keys k ON k.id = u.key_id
		WHERE k.account_id = ? AND u.day >= ? AND u.day <= ? AND (? = '' OR u.key_id = ?)
		ORDER BY u.day, u.key_id`, accountID, from, to, keyID, keyID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []UsageRow{}
	for rows.Next() {
		var u UsageRow
		if err := rows.Scan(&u.KeyID, &u.Day, &u.Validations, &u.FailedValidations, &u.Units); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return db.withPendingUsage(out, accountID, from, to, keyID), nil
}

// withPendingUsage adds the counters not yet flushed to rows, so the report
// is current to the request.
func (db *DB) withPendingUsage(rows []UsageRow, accountID, from, to, keyID string) []UsageRow {
	type rowKey struct{ keyID, day string }
	at := map[rowKey]int{}
	for i, r := range rows {
		at[rowKey{r.KeyID, r.Day}] = i
	}
	for _, p := range db.pendingDaily() {
		acc, id := db.index.KeyOwner(p.pos)
		day := time.Unix(int64(p.day)*86400, 0).UTC().Format(time.DateOnly)
		if acc != accountID || day < from || day > to || (keyID != "" && id != keyID) {
			continue
		}
		k := rowKey{id, day}
		i, ok := at[k]
		if !ok {
			i = len(rows)
			at[k] = i
			rows = append(rows, UsageRow{KeyID: id, Day: day})
		}
		rows[i].Validations += p.c.validations
		rows[i].FailedValidations += p.c.failed
		rows[i].Units += p.c.units
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Day != rows[j].Day {
			return rows[i].Day < rows[j].Day
		}
		return rows[i].KeyID < rows[j].KeyID
	})
	return rows
}
