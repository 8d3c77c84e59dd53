package store

import (
	"time"

	"keyd/store/keyindex"
)

// KeyView is what validation needs to know about a key and its account,
// copied out of the index (see package keyindex).
type KeyView struct {
	KeyID      string
	Type       string
	Name       string
	Hint       string
	Status     string // as stored; see KeyStatus
	ExpiresAt  int64  // unix seconds, 0 = never
	ValidUntil int64  // unix seconds, 0 = no grace deadline
	// ReplacedAt is when a primary key with a grace deadline was replaced
	// by a reset, unix seconds; 0 otherwise.
	ReplacedAt int64
	Scopes     []string
	Sites      []string
	// PrimaryScopes are the rules of the account's primary key; an alias may
	// use only what both its own rules and these allow.
	PrimaryScopes []string

	AccountID string
	// AccountNum is the number in AccountID: a compact key for per-account
	// state kept in memory, such as rate limits.
	AccountNum      uint64
	AccountStatus   string
	ParentSuspended bool
	Plan            string
	Credits         int64
	// RateLimitPerMinute is the plan's limit shared by the account's keys;
	// 0 is unlimited.
	RateLimitPerMinute int
	// StateVersion changes whenever the account or any of its keys changes
	// (a reset, revocation, deactivation, new scopes or sites, a new plan
	// ...), though not when credits are spent: what was decided about the
	// key may be reused while it stays the same.
	StateVersion uint64

	// SpendLimit is the key's own cap within the pool; Limit 0 = none.
	SpendLimit SpendLimit
	spend      spendState
	// MaxSites is how many sites may use the key (see UseSite); 0 = any
	// number. SitesUsed is how many hold a slot, for the caller of UseSite
	// to note.
	MaxSites  int
	SitesUsed int

	num uint64 // the number in KeyID

	pos uint32 // position in the index, for activity recording
}

// IsPrimary reports whether the key is an account's primary key.
func (v *KeyView) IsPrimary() bool { return v.Type == KeyTypePrimary }

// Check decides whether the key may be used at t. It returns nil or one of
// ErrKeyRevoked, ErrKeyInactive, ErrKeyExpired, ErrAccountSuspended: the
// key's own status (KeyStatus) first, then its account's.
func (v *KeyView) Check(t time.Time) error {
	switch KeyStatus(v.Status, v.ExpiresAt, v.ValidUntil, t) {
	case KeyRevoked:
		return ErrKeyRevoked
	case KeyExpired:
		return ErrKeyExpired
	case KeyInactive:
		return ErrKeyInactive
	}
	if v.AccountStatus != AccountActive || v.ParentSuspended {
		return ErrAccountSuspended
	}
	return nil
}

// AllowsScope reports whether the key may be used for scope: by its own
// rules and, for an alias, by its primary key's rules too.
func (v *KeyView) AllowsScope(scope string) bool {
	if !ScopeAllowed(v.Scopes, scope) {
		return false
	}
	return v.Type != KeyTypeAlias || ScopeAllowed(v.PrimaryScopes, scope)
}

// ScopeLimited reports whether the key may be used for some scopes only,
// by its own rules or, for an alias, by its primary key's: a charge must
// then say which scope it is for.
func (v *KeyView) ScopeLimited() bool {
	return !allowsEveryScope(v.Scopes) || v.Type == KeyTypeAlias && !allowsEveryScope(v.PrimaryScopes)
}

func allowsEveryScope(rules []string) bool { return len(rules) == 1 && rules[0] == "*" }

// Allowance is the key's spend limit and what it spent of it at now; false
// for a key without a limit.
func (v *KeyView) Allowance(now time.Time) (Allowance, bool) {
	if v.SpendLimit.Limit == 0 {
		return Allowance{}, false
	}
	return allowanceAt(v.SpendLimit, v.spend, now), true
}

// AllowsSite reports whether the site (its home URL) may use the key.
func (v *KeyView) AllowsSite(site string) bool { return SiteAllowed(v.Sites, site) }

// LookupKey finds a key by its SHA-256 in memory. It never touches SQLite.
func (db *DB) LookupKey(hash [32]byte) (KeyView, bool) {
	e, ok := db.index.Lookup(&hash)
	if !ok {
		return KeyView{}, false
	}
	return viewOf(&e), true
}

// viewOf is the view of what the index holds of a key: its strings and
// lists are the entry's, so this costs no allocation.
func viewOf(e *keyindex.Entry) KeyView {
	v := KeyView{
		KeyID:              e.KeyID,
		Type:               KeyTypePrimary,
		Name:               e.Name,
		Hint:               e.Hint,
		Status:             e.Status,
		ExpiresAt:          e.ExpiresAt,
		ValidUntil:         e.ValidUntil,
		ReplacedAt:         e.ReplacedAt,
		Scopes:             e.Scopes,
		Sites:              e.Sites,
		PrimaryScopes:      e.PrimaryScopes,
		AccountID:          e.AccountID,
		AccountNum:         e.AccountNum,
		AccountStatus:      e.AccountStatus,
		ParentSuspended:    e.ParentSuspended,
		Plan:               e.Plan,
		Credits:            e.Credits,
		RateLimitPerMinute: e.RateLimitPerMinute,
		StateVersion:       e.StateVersion,
		MaxSites:           e.MaxSites,
		num:                e.KeyNum,
		pos:                e.Pos,
	}
	if e.Alias {
		v.Type = KeyTypeAlias
	}
	if e.SpendLimit > 0 {
		v.SpendLimit = SpendLimit{Limit: e.SpendLimit, Period: e.SpendPeriod}
		v.spend = spendState{start: e.Spend.Start, spent: e.Spend.Spent}
	}
	return v
}

// indexPlans is what the index keeps of plans (nil for nil).
func indexPlans(plans []Plan) []keyindex.Plan {
	if plans == nil {
		return nil
	}
	out := make([]keyindex.Plan, len(plans))
	for i, p := range plans {
		out[i] = keyindex.Plan{Name: p.Name, RateLimitPerMinute: p.RateLimitPerMinute}
	}
	return out
}

// LoadStats describes how the index was loaded at start-up.
type LoadStats struct {
	DatabaseKeys int // rows in the keys table when the index was loaded
	IndexKeys    int // entries in the in-memory index right after loading
	Accounts     int
	Took         time.Duration
	// FromSnapshot is true when the index came from the index snapshot, and
	// CaughtUpEvents how many later events were applied to it.
	FromSnapshot   bool
	CaughtUpEvents int
	// SnapshotRejected is why a snapshot that was there was not used (the
	// database was loaded instead); SnapshotError why writing one failed.
	SnapshotRejected string
	SnapshotError    string
}

// LoadStats reports how the index was loaded; the key counts always agree
// (Open fails otherwise). It is zero when the index was not loaded.
func (db *DB) LoadStats() LoadStats { return db.loaded }

// IndexCounts reports how many keys and accounts are held in memory.
func (db *DB) IndexCounts() (keys, accounts int) { return db.index.Counts() }
