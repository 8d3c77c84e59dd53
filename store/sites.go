package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Site activations: a key with max_sites counts the sites it is used on.
// The first validation from a new site takes a slot while one is free; a
// site that holds one keeps it until the owner or the site releases it, or
// until it has not been seen for the key's release_after.
//
// Validation must stay in memory, so the active sites of every limited key
// are kept in memory too (activeSites), refreshed from committed state like
// the index. A validation from a site that is already active, or of a key
// without max_sites, reads only memory; only taking a new slot writes, in a
// write transaction that counts the slots, so concurrent new sites can never
// take more than max_sites.

// Site release reasons, in site.released events.
const (
	ReleasedByOwner = "owner" // DELETE /v1/keys/{id}/sites/{host}
	ReleasedBySite  = "site"  // POST /v1/sites/deactivate
	ReleasedIdle    = "idle"  // not seen for the key's release_after
)

// MaxSitesLimit bounds max_sites.
const MaxSitesLimit = 100_000

// ReleaseAfter bounds a key's release_after.
var ReleaseAfter = DurationBounds{Min: time.Hour, Max: 3650 * 24 * time.Hour, Range: "between 1h and 3650d"}

// SiteSlots is how many of a key's site slots are taken.
type SiteSlots struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// activeSites are the sites holding a slot of each limited key, by key
// number and host.
type activeSites struct {
	mu    sync.RWMutex
	byKey map[uint64]map[string]*activeSite
}

type activeSite struct {
	lastSeen atomic.Int64 // unix seconds
}

func newActiveSites() *activeSites { return &activeSites{byKey: map[uint64]map[string]*activeSite{}} }

// activationRow is a slot as stored.
type activationRow struct {
	key      uint64
	host     string
	lastSeen int64
}

// replace sets the active sites of keys (and of every key of rows) to what
// rows say was committed, keeping the later of the stored and the
// remembered last sight.
func (a *activeSites) replace(keys []uint64, rows []activationRow) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fresh := make(map[uint64]map[string]*activeSite, len(keys))
	for _, r := range rows {
		m := fresh[r.key]
		if m == nil {
			m = map[string]*activeSite{}
			fresh[r.key] = m
		}
		s := &activeSite{}
		s.lastSeen.Store(r.lastSeen)
		if old, ok := a.byKey[r.key][r.host]; ok && old.lastSeen.Load() > r.lastSeen {
			s.lastSeen.Store(old.lastSeen.Load())
		}
		m[r.host] = s
	}
	for _, k := range keys {
		if _, ok := fresh[k]; !ok {
			delete(a.byKey, k)
		}
	}
	for k, m := range fresh {
		a.byKey[k] = m
	}
}

// seen marks host as seen now for key and reports whether it holds a slot,
// and how many slots the key's sites hold.
func (a *activeSites) seen(key uint64, host string, now int64) (active bool, used int) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	m := a.byKey[key]
	if s, ok := m[host]; ok {
		if s.lastSeen.Load() < now {
			s.lastSeen.Store(now)
		}
		return true, len(m)
	}
	return false, len(m)
}

// lastSeen is when host was last seen using key, by memory; 0 if unknown.
func (a *activeSites) lastSeen(key uint64, host string) int64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if s, ok := a.byKey[key][host]; ok {
		return s.lastSeen.Load()
	}
	return 0
}

// applySites brings the active sites of the snapshots' keys up to date.
func (db *DB) applySites(snaps []accountSnapshot) {
	for _, s := range snaps {
		keys := make([]uint64, 0, len(s.Keys))
		for _, k := range s.Keys {
			keys = append(keys, k.ID)
		}
		db.sites.replace(keys, s.activations)
	}
}

// loadSites replaces what is kept in memory of the sites holding slots
// with every activation in the database, as the index is loaded.
func (db *DB) loadSites(ctx context.Context, q queryer) error {
	activations, err := readActivations(ctx, q, "")
	if err != nil {
		return err
	}
	db.sites = newActiveSites()
	db.sites.replace(nil, activations)
	return nil
}

// readActivations reads the slots of an account's keys ("" for every
// account).
func readActivations(ctx context.Context, q queryer, accountID string) ([]activationRow, error) {
	query := `SELECT a.key_id, a.host, a.last_seen FROM key_activations a`
	var args []any
	if accountID != "" {
		query += ` JOIN keys k ON k.id = a.key_id WHERE k.account_id = ?`
		args = append(args, accountID)
	}
	return scanActivations(q.QueryContext(ctx, query, args...))
}

// readKeyActivations reads the slots of the keys keyIDs.
func readKeyActivations(ctx context.Context, q queryer, keyIDs []string) ([]activationRow, error) {
	args := make([]any, len(keyIDs))
	for i, id := range keyIDs {
		args[i] = id
	}
	return scanActivations(q.QueryContext(ctx, `SELECT key_id, host, last_seen FROM key_activations
		WHERE key_id IN (?`+strings.Repeat(", ?", len(keyIDs)-1)+`)`, args...))
}

func scanActivations(rows *sql.Rows, err error) ([]activationRow, error) {
	if err != nil {
		return nil, fmt.Errorf("store: read site activations: %w", err)
	}
	defer rows.Close()
	var out []activationRow
	for rows.Next() {
		var (
			r  activationRow
			id string
		)
		if err := rows.Scan(&id, &r.host, &r.lastSeen); err != nil {
			return nil, err
		}
		if r.key, err = parseID(prefixKey, id); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// UseSite decides whether the validated key v may be used from site: a key
// without max_sites always may; otherwise the site's host must hold one of
// its slots, and a new host takes a free one (site.activated). Local
// development hosts never take a slot. It returns the key's slots after the
// decision, or ErrSiteRequired (no site) or a *SiteLimitError.
//
// A host that already holds a slot is answered from memory, without
// allocating; only a new host writes. v is taken by value so that the
// caller's view stays on its stack (validation allocates it nowhere else).
func (db *DB) UseSite(ctx context.Context, v KeyView, site string, now time.Time) (SiteSlots, error) {
	slots := SiteSlots{Limit: v.MaxSites}
	host := SiteHost(site)
	if host == "" {
		_, slots.Used = db.sites.seen(v.num, "", 0)
		return slots, ErrSiteRequired
	}
	active, used := db.sites.seen(v.num, host, now.Unix())
	slots.Used = used
	if active || isLocalDevHost(host) {
		return slots, nil
	}
	return db.activateSite(ctx, &v, host)
}

func (db *DB) activateSite(ctx context.Context, v *KeyView, host string) (SiteSlots, error) {
	slots := SiteSlots{Limit: v.MaxSites}
	err := db.write(ctx, func(t *Tx) error {
		var limit sql.NullInt64
		if err := t.tx.QueryRowContext(ctx, `SELECT max_sites FROM keys WHERE id = ?`, v.KeyID).Scan(&limit); err != nil {
			return fmt.Errorf("store: read max_sites: %w", err)
		}
		var (
			used    int
			already bool
		)
		if err := t.tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN host = ? THEN 1 ELSE 0 END), 0) FROM key_activations WHERE key_id = ?`,
			host, v.KeyID).Scan(&used, &already); err != nil {
			return fmt.Errorf("store: count site activations: %w", err)
		}
		slots = SiteSlots{Used: used, Limit: int(limit.Int64)}
		if already || !limit.Valid {
			// Taken meanwhile, or the limit was removed: refresh the
			// account's sites in memory so that the next validation from
			// this site stays there.
			t.touch(v.AccountID)
			return nil
		}
		if used >= slots.Limit {
			return &SiteLimitError{Used: used, Limit: slots.Limit}
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO key_activations (key_id, host, activated_at, last_seen) VALUES (?, ?, ?, ?)`,
			v.KeyID, host, t.now.Unix(), t.now.Unix()); err != nil {
			return fmt.Errorf("store: activate site: %w", err)
		}
		slots.Used++
		return t.siteEvent(ctx, EventSiteActivated, SystemActor, v.AccountID, v.KeyID, host, slots, "")
	})
	return slots, err
}

// siteEvent writes site.activated or site.released (with its reason).
func (t *Tx) siteEvent(ctx context.Context, typ string, actor Actor, accountID, keyID, host string, slots SiteSlots, reason string) error {
	k, err := getKey(ctx, t.tx, accountID, keyID)
	if err != nil {
		return err
	}
	_, err = t.event(ctx, accountID, typ, actor, keyID, SiteData{AccountID: accountID, Hint: k.Hint, KeyID: keyID,
		Name: k.Name, Reason: reason, Site: host, Sites: slots, Type: k.Type})
	return err
}

// releaseSite frees the slot host holds for the key; false when it held none.
func (t *Tx) releaseSite(ctx context.Context, actor Actor, accountID, keyID, host, reason string) (bool, SiteSlots, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM key_activations WHERE key_id = ? AND host = ?`, keyID, host)
	if err != nil {
		return false, SiteSlots{}, fmt.Errorf("store: release site: %w", err)
	}
	slots, err := t.siteSlots(ctx, keyID)
	if n, _ := res.RowsAffected(); n == 0 || err != nil {
		return false, slots, err
	}
	return true, slots, t.siteEvent(ctx, EventSiteReleased, actor, accountID, keyID, host, slots, reason)
}

func (t *Tx) siteSlots(ctx context.Context, keyID string) (SiteSlots, error) {
	var (
		s     SiteSlots
		limit sql.NullInt64
	)
	err := t.tx.QueryRowContext(ctx, `SELECT max_sites, (SELECT count(*) FROM key_activations WHERE key_id = keys.id)
		FROM keys WHERE id = ?`, keyID).Scan(&limit, &s.Used)
	s.Limit = int(limit.Int64)
	return s, err
}

// ReleaseSite frees the slot a site holds for a key of the account, on the
// owner's behalf. The host is compared in its normal form; ErrNotFound when
// it holds no slot.
func (db *DB) ReleaseSite(ctx context.Context, actor Actor, accountID, keyID, host string) (SiteSlots, error) {
	host = CanonicalHost(host)
	var slots SiteSlots
	err := db.write(ctx, func(t *Tx) error {
		if _, err := getKey(ctx, t.tx, accountID, keyID); err != nil {
			return err
		}
		released, s, err := t.releaseSite(ctx, actor, accountID, keyID, host, ReleasedByOwner)
		slots = s
		if err == nil && !released {
			return ErrNotFound
		}
		return err
	})
	return slots, err
}

// DeactivateSite frees the slot the site (its home URL) holds for key v, on
// the site's own behalf (a site that moved). released is false when it held
// none.
func (db *DB) DeactivateSite(ctx context.Context, v *KeyView, site string) (released bool, slots SiteSlots, err error) {
	host := SiteHost(site)
	if host == "" {
		return false, SiteSlots{}, invalidField("site", "must be the site's home URL, such as https://example.com")
	}
	actor := Actor{Type: ActorAlias, KeyID: v.KeyID}
	if v.IsPrimary() {
		actor.Type = ActorPrimary
	}
	err = db.write(ctx, func(t *Tx) error {
		released, slots, err = t.releaseSite(ctx, actor, v.AccountID, v.KeyID, host, ReleasedBySite)
		return err
	})
	return released, slots, err
}

// ReleaseIdleSites frees the slots of sites not seen for their key's
// release_after (site.released, reason idle), and writes when the others
// were last seen. It returns how many it released.
func (db *DB) ReleaseIdleSites(ctx context.Context) (int, error) {
	n := 0
	err := db.write(ctx, func(t *Tx) error {
		n = 0
		rows, err := t.tx.QueryContext(ctx, `SELECT k.account_id, a.key_id, a.host, a.last_seen, k.release_after
			FROM key_activations a JOIN keys k ON k.id = a.key_id WHERE k.release_after IS NOT NULL`)
		if err != nil {
			return err
		}
		type slot struct {
			account, key, host string
			lastSeen, after    int64
		}
		var slots []slot
		for rows.Next() {
			var s slot
			if err := rows.Scan(&s.account, &s.key, &s.host, &s.lastSeen, &s.after); err != nil {
				rows.Close()
				return err
			}
			slots = append(slots, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, s := range slots {
			num, err := parseID(prefixKey, s.key)
			if err != nil {
				return err
			}
			seen := max(s.lastSeen, db.sites.lastSeen(num, s.host))
			if t.now.Unix()-seen < s.after {
				if seen > s.lastSeen {
					if _, err := t.tx.ExecContext(ctx, `UPDATE key_activations SET last_seen = ? WHERE key_id = ? AND host = ?`,
						seen, s.key, s.host); err != nil {
						return fmt.Errorf("store: note site last seen: %w", err)
					}
				}
				continue
			}
			released, _, err := t.releaseSite(ctx, SystemActor, s.account, s.key, s.host, ReleasedIdle)
			if err != nil {
				return err
			}
			if released {
				n++
			}
		}
		return nil
	})
	return n, err
}
