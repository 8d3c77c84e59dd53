package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unique"

	"keyd/store/keyindex"
)

// activity collects what validations observe (last use, daily counters, the
// sites that use a key) in memory, so that validation writes nothing;
// FlushActivity writes it to SQLite in batches.
//
// What each validation changes lives in its key's index record
// (keyindex.Activity),
// which validation has just read: recording then touches no map and no other
// memory, and with a million keys that is most of what it would cost. The
// maps below gather what a flush takes from the records (collect), units
// charged by usage, the sites reported, and what a failed flush keeps.
type activity struct {
	mu       sync.Mutex        // guards the maps and dirty
	flushMu  sync.Mutex        // one flush at a time; guards written
	dirty    []uint32          // positions of keys whose record holds activity
	lastUsed map[uint32]int64  // key position -> unix seconds
	daily    map[dayKey]counts // per key and UTC day
	sites    map[siteKey]siteSeen
	dropped  int // site reports dropped because too many were pending

	// flushing holds the daily counters a flush is writing, so reports still
	// see them until they are committed.
	flushing map[dayKey]counts

	// written is what the last flushes wrote of each (key, site), used only
	// by FlushActivity. A site that keeps validating is written again only
	// when its report changes or an hour has passed: last_seen is kept to the
	// hour, which the sites list needs, at a fraction of the writes.
	written map[siteKey]siteSeen

	reportSeed maphash.Seed // for the hash of a site report (see keyindex.Activity.SetReport)
}

// rewriteAfter is how stale a site's stored last_seen and a key's stored
// last_used_at may get, in seconds.
const rewriteAfter = 3600

// maxWrittenSites bounds the memory of what was written; past it the memory
// starts afresh, which only costs some rewrites.
const maxWrittenSites = 200_000

type dayKey struct {
	pos uint32
	day int32 // days since the unix epoch
}

type counts struct{ validations, failed, units int64 }

func (c *counts) add(o counts) {
	c.validations += o.validations
	c.failed += o.failed
	c.units += o.units
}

type siteKey struct {
	pos  uint32
	site string
}

type siteSeen struct {
	first, last                      int64
	plugin, pluginVersion, wpVersion string
}

// maxPendingSites bounds memory between flushes when clients report many
// distinct sites.
const maxPendingSites = 100_000

func newActivity() *activity {
	return &activity{lastUsed: map[uint32]int64{}, daily: map[dayKey]counts{}, sites: map[siteKey]siteSeen{},
		written: map[siteKey]siteSeen{}, reportSeed: maphash.MakeSeed()}
}

// SiteReport is what a plugin tells about itself when it validates a key.
type SiteReport struct {
	Site, Plugin, PluginVersion, WPVersion string
}

// RecordValidation notes, in memory only, that key v was presented for
// validation at t and whether it was accepted.
func (db *DB) RecordValidation(v KeyView, ok bool, report SiteReport, t time.Time) {
	a := db.activity
	sec := t.Unix()
	day := int32(sec / 86400)
	acts := db.index.ReadActivities()
	defer db.index.DoneActivities()
	act := acts.At(v.pos)
	if act == nil {
		return // the store is closed
	}
	for !act.Count(day, ok) {
		a.spill(v.pos, act, day)
	}
	if ok {
		act.SetLastUsed(sec)
	}
	a.list(v.pos, act)
	if !ok || report.Site == "" {
		return
	}
	// The same report again within rewriteAfter would not be written
	// (see written), so it is not even read: most validations repeat their
	// key's last report.
	hash := maphash.Comparable(a.reportSeed, report)
	if act.RecentReport(hash, sec, rewriteAfter) {
		return
	}
	if a.recordSite(v.pos, report, sec) {
		act.SetReport(hash, sec)
	}
}

// list puts the key at pos on the list collect goes through, once.
func (a *activity) list(pos uint32, act *keyindex.Activity) {
	if act.List() {
		a.mu.Lock()
		a.dirty = append(a.dirty, pos)
		a.mu.Unlock()
	}
}

// recordUse notes, in memory only, that the key at pos was used at t other
// than by a validation (a charge): its last use, as validation records it,
// flushed with the rest.
func (db *DB) recordUse(pos uint32, t time.Time) {
	acts := db.index.ReadActivities()
	defer db.index.DoneActivities()
	if act := acts.At(pos); act != nil { // nil: the store is closed
		act.SetLastUsed(t.Unix())
		db.activity.list(pos, act)
	}
}

// spill moves a key's counters into the daily map and starts them afresh
// for day.
func (a *activity) spill(pos uint32, act *keyindex.Activity, day int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.takeCounts(pos, act, day)
}

// takeCounts must be called with mu held: it moves the record's counters
// into the daily map and restarts them for day.
func (a *activity) takeCounts(pos uint32, act *keyindex.Activity, day int32) {
	oldDay, c := act.Take(day)
	a.addCounts(dayKey{pos, oldDay}, counts{validations: c.Validations, failed: c.Failed})
}

// addCounts must be called with mu held.
func (a *activity) addCounts(k dayKey, c counts) {
	if c == (counts{}) {
		return
	}
	cur := a.daily[k]
	cur.add(c)
	a.daily[k] = cur
}

// recordSite puts a site report into the pending sites; false when too many
// are pending already.
func (a *activity) recordSite(pos uint32, report SiteReport, sec int64) bool {
	site := NormalizeSite(report.Site)
	if site == "" {
		return false
	}
	// Pending and written sites are kept for many keys, often with the same
	// texts (a plugin's name and version, WordPress's version), and the
	// report's texts may be pieces of a whole request body: keep one shared
	// copy of each text instead.
	site = interned(site)
	report.Plugin, report.PluginVersion, report.WPVersion = interned(report.Plugin), interned(report.PluginVersion), interned(report.WPVersion)
	a.mu.Lock()
	defer a.mu.Unlock()
	k := siteKey{pos, site}
	s, seen := a.sites[k]
	if !seen {
		if len(a.sites) >= maxPendingSites {
			a.dropped++
			return false
		}
		s.first = sec
	}
	s.last = sec
	// Keep what was reported before when a later call leaves a field out.
	s.plugin = firstNonEmpty(report.Plugin, s.plugin)
	s.pluginVersion = firstNonEmpty(report.PluginVersion, s.pluginVersion)
	s.wpVersion = firstNonEmpty(report.WPVersion, s.wpVersion)
	a.sites[k] = s
	return true
}

func interned(s string) string { return unique.Make(s).Value() }

// collect moves what the key records hold into the maps, for a flush or a
// report. Lock order: index, then activity.
func (db *DB) collect() {
	a := db.activity
	acts := db.index.ReadActivities()
	defer db.index.DoneActivities()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, pos := range a.dirty {
		act := acts.At(pos)
		if act == nil {
			continue
		}
		// Unlisted first: a validation from here on lists the key again,
		// and whatever it counts is either taken below or left for later.
		act.Unlist()
		a.takeCounts(pos, act, act.Day())
		_, pending := a.lastUsed[pos] // to be written anyway: write the newest
		if used, ok := act.TakeLastUsed(pending, rewriteAfter); ok {
			a.lastUsed[pos] = used // recorded after what the map holds
		}
	}
	a.dirty = a.dirty[:0]
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type pendingCounts struct {
	dayKey
	c counts
}

// pendingDaily copies the daily counters not yet flushed.
func (db *DB) pendingDaily() []pendingCounts {
	db.collect()
	a := db.activity
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]pendingCounts, 0, len(a.daily)+len(a.flushing))
	for _, m := range []map[dayKey]counts{a.daily, a.flushing} {
		for k, c := range m {
			out = append(out, pendingCounts{k, c})
		}
	}
	return out
}

// addUnits counts units charged to the key at position pos, for the daily
// usage report.
func (a *activity) addUnits(pos uint32, units int64, t time.Time) {
	k := dayKey{pos, int32(t.Unix() / 86400)}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.daily[k]
	c.units += units
	a.daily[k] = c
}

// NormalizeSite turns a site's home URL into the form keyd records and
// matches: the host as CanonicalHost gives it (lower case, no trailing dot,
// an international name in its xn-- form), the port unless it is the
// scheme's default (80 for http, 443 for https; a URL without a scheme is
// http), and the path without trailing slash, e.g.
// "https://Example.com.:443/blog/" -> "example.com/blog". It returns "" when
// s names no host. Plain http(s) URLs, what plugins send, are read without
// net/url, which is the costly part of recording a validation.
func NormalizeSite(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if scheme, rest, ok := plainSiteURL(s); ok {
		hostport, path, _ := strings.Cut(rest, "/")
		// A port that is not a number is left to net/url, which refuses it.
		if host, port, _ := strings.Cut(hostport, ":"); host != "" && allDigits(port) {
			return joinSite(scheme, host, port, "/"+path)
		}
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	return joinSite(u.Scheme, u.Hostname(), u.Port(), u.EscapedPath())
}

// joinSite is NormalizeSite's answer from the parts of a URL.
func joinSite(scheme, host, port, path string) string {
	host = CanonicalHost(host)
	if host == "" {
		return ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return host + strings.TrimRight(path, "/")
}

// defaultPort is the port a browser leaves out of a URL of the scheme.
func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// plainSiteURL returns the scheme and what follows it of an http(s) URL made
// only of characters that need no decoding and carry no user, query or
// fragment.
func plainSiteURL(s string) (scheme, rest string, ok bool) {
	scheme = "https"
	rest, ok = strings.CutPrefix(s, "https://")
	if !ok {
		scheme = "http"
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			return "", "", false
		}
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '/' || c == '_' || c == ':' || c == '~') {
			return "", "", false
		}
	}
	return scheme, rest, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// pendingLastUsed is the last use recorded in memory of the key with this
// hash, flushed or not.
func (db *DB) pendingLastUsed(h [32]byte) (time.Time, bool) {
	pos, sec, found := db.index.LastUsed(&h)
	if !found {
		return time.Time{}, false
	}
	if sec == 0 {
		a := db.activity
		a.mu.Lock()
		sec = a.lastUsed[pos]
		a.mu.Unlock()
	}
	return time.Unix(sec, 0).UTC(), sec != 0
}

// FlushActivity writes pending last-used times, counters and sites, in
// transactions of flushChunk rows. On failure what no transaction committed
// is kept for the next flush.
func (db *DB) FlushActivity(ctx context.Context) error {
	db.collect()
	a := db.activity
	a.mu.Lock()
	lastUsed, daily, sites := a.lastUsed, a.daily, a.sites
	a.lastUsed, a.daily, a.sites = map[uint32]int64{}, map[dayKey]counts{}, map[siteKey]siteSeen{}
	a.flushing = daily
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.flushing = nil
		a.mu.Unlock()
	}()
	if len(lastUsed)+len(daily)+len(sites) == 0 {
		return nil
	}
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	toWrite := make(map[siteKey]siteSeen, len(sites))
	for k, s := range sites {
		if w, ok := a.written[k]; ok && s.last-w.last < rewriteAfter && s.sameReport(w) {
			continue
		}
		toWrite[k] = s
	}
	written := maps.Clone(toWrite)
	if err := db.flushActivity(ctx, lastUsed, daily, toWrite); err != nil {
		a.restore(lastUsed, daily, toWrite)
		return err
	}
	if len(a.written)+len(written) > maxWrittenSites {
		clear(a.written)
	}
	maps.Copy(a.written, written)
	return nil
}

func (s siteSeen) sameReport(o siteSeen) bool {
	return s.plugin == o.plugin && s.pluginVersion == o.pluginVersion && s.wpVersion == o.wpVersion
}

// flushChunk bounds the rows one flush transaction writes. After a busy
// minute a flush writes a row or more for every key used; in one transaction
// on a large database that holds the writer for seconds, and usage charges
// would wait as long. Between chunks they go ahead.
const flushChunk = 500

// activityRow is one row a flush writes: a key's last use, its counters for
// a day, or a site it was used from.
type activityRow struct {
	table activityTable
	key   uint64 // the number of the key's id
	pos   uint32
	day   int32  // tableDaily
	site  string // tableSites
}

type activityTable int

const (
	tableLastUsed activityTable = iota
	tableDaily
	tableSites
)

// activityRows lists what is to be written, table by table and within a
// table in the order of its primary key. Key ids are random, so in the order
// the maps give them every row of a chunk lands on a page of its own; in key
// order neighbours share pages, and new counter and site rows go into their
// tables in order. Measured on a million keys, a flush of 80,000 keys' rows
// costs about a sixth less CPU.
func (db *DB) activityRows(lastUsed map[uint32]int64, daily map[dayKey]counts, sites map[siteKey]siteSeen) []activityRow {
	rows := make([]activityRow, 0, len(lastUsed)+len(daily)+len(sites))
	for pos := range lastUsed {
		rows = append(rows, activityRow{table: tableLastUsed, key: db.index.KeyNumber(pos), pos: pos})
	}
	for k := range daily {
		rows = append(rows, activityRow{table: tableDaily, key: db.index.KeyNumber(k.pos), pos: k.pos, day: k.day})
	}
	for k := range sites {
		rows = append(rows, activityRow{table: tableSites, key: db.index.KeyNumber(k.pos), pos: k.pos, site: k.site})
	}
	slices.SortFunc(rows, func(a, b activityRow) int {
		return cmp.Or(cmp.Compare(a.table, b.table), cmp.Compare(a.key, b.key),
			cmp.Compare(a.day, b.day), strings.Compare(a.site, b.site))
	})
	return rows
}

// flushActivity writes the maps in chunks. What a chunk committed is removed
// from the maps (from daily under mu: reports read it as flushing), so on an
// error they hold exactly what is still to be written.
func (db *DB) flushActivity(ctx context.Context, lastUsed map[uint32]int64, daily map[dayKey]counts, sites map[siteKey]siteSeen) error {
	rows := db.activityRows(lastUsed, daily, sites)
	for len(rows) > 0 {
		chunk := rows[:min(flushChunk, len(rows))]
		if err := db.flushActivityChunk(ctx, chunk, lastUsed, daily, sites); err != nil {
			return err
		}
		rows = rows[len(chunk):]
	}
	return nil
}

func (db *DB) flushActivityChunk(ctx context.Context, chunk []activityRow, lastUsed map[uint32]int64, daily map[dayKey]counts, sites map[siteKey]siteSeen) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: flush activity: %w", err)
	}
	defer tx.Rollback()
	// One prepared statement per kind of row: parsing the SQL again for each
	// row would cost as much as the write itself.
	lastUsedStmt, err := tx.PrepareContext(ctx, `INSERT INTO key_last_used (key_id, last_used_at) VALUES (?, ?)
		ON CONFLICT (key_id) DO UPDATE SET last_used_at = CASE WHEN excluded.last_used_at > key_last_used.last_used_at
			THEN excluded.last_used_at ELSE key_last_used.last_used_at END`)
	if err != nil {
		return fmt.Errorf("store: flush last used: %w", err)
	}
	defer lastUsedStmt.Close()
	dailyStmt, err := tx.PrepareContext(ctx, `INSERT INTO key_usage_daily (key_id, day, validations, failed, units)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, day) DO UPDATE SET
		validations = key_usage_daily.validations + excluded.validations, failed = key_usage_daily.failed + excluded.failed,
		units = key_usage_daily.units + excluded.units`)
	if err != nil {
		return fmt.Errorf("store: flush counters: %w", err)
	}
	defer dailyStmt.Close()
	siteStmt, err := tx.PrepareContext(ctx, `INSERT INTO key_sites (key_id, site, first_seen, last_seen, plugin, plugin_version, wp_version)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key_id, site) DO UPDATE SET
		first_seen = CASE WHEN excluded.first_seen < key_sites.first_seen THEN excluded.first_seen ELSE key_sites.first_seen END,
		last_seen = CASE WHEN excluded.last_seen > key_sites.last_seen THEN excluded.last_seen ELSE key_sites.last_seen END,
		plugin = CASE WHEN excluded.plugin <> '' THEN excluded.plugin ELSE key_sites.plugin END,
		plugin_version = CASE WHEN excluded.plugin_version <> '' THEN excluded.plugin_version ELSE key_sites.plugin_version END,
		wp_version = CASE WHEN excluded.wp_version <> '' THEN excluded.wp_version ELSE key_sites.wp_version END`)
	if err != nil {
		return fmt.Errorf("store: flush sites: %w", err)
	}
	defer siteStmt.Close()

	for _, r := range chunk {
		keyID := formatID(prefixKey, r.key)
		switch r.table {
		case tableLastUsed:
			if _, err := lastUsedStmt.ExecContext(ctx, keyID, lastUsed[r.pos]); err != nil {
				return fmt.Errorf("store: flush last used: %w", err)
			}
		case tableDaily:
			c := daily[dayKey{r.pos, r.day}]
			day := time.Unix(int64(r.day)*86400, 0).UTC().Format(time.DateOnly)
			if _, err := dailyStmt.ExecContext(ctx, keyID, day, c.validations, c.failed, c.units); err != nil {
				return fmt.Errorf("store: flush counters: %w", err)
			}
		case tableSites:
			s := sites[siteKey{r.pos, r.site}]
			if _, err := siteStmt.ExecContext(ctx, keyID, r.site, s.first, s.last, s.plugin, s.pluginVersion, s.wpVersion); err != nil {
				return fmt.Errorf("store: flush sites: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.activity.mu.Lock()
	defer db.activity.mu.Unlock()
	for _, r := range chunk {
		switch r.table {
		case tableLastUsed:
			delete(lastUsed, r.pos)
		case tableDaily:
			delete(daily, dayKey{r.pos, r.day})
		case tableSites:
			delete(sites, siteKey{r.pos, r.site})
		}
	}
	return nil
}

// restore merges data whose flush failed back into the pending maps.
func (a *activity) restore(lastUsed map[uint32]int64, daily map[dayKey]counts, sites map[siteKey]siteSeen) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushing = nil // merged back below, so not counted twice
	for pos, t := range lastUsed {
		if t > a.lastUsed[pos] {
			a.lastUsed[pos] = t
		}
	}
	for k, c := range daily {
		cur := a.daily[k]
		cur.add(c)
		a.daily[k] = cur
	}
	for k, s := range sites {
		if cur, ok := a.sites[k]; ok {
			s.first = min(s.first, cur.first)
			s.last = max(s.last, cur.last)
			s.plugin = firstNonEmpty(cur.plugin, s.plugin)
			s.pluginVersion = firstNonEmpty(cur.pluginVersion, s.pluginVersion)
			s.wpVersion = firstNonEmpty(cur.wpVersion, s.wpVersion)
		}
		a.sites[k] = s
	}
}
