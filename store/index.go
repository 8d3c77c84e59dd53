package store

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// The index holds every key and account in memory so that validation never
// touches SQLite, however many keys are stored and however many requests carry
// unknown keys. Records are small fixed structs without pointers (the garbage
// collector does not scan them) and strings live in one append-only byte
// arena. The index is only ever changed from committed database state (see
// DB.write and DB.FollowChanges), so it cannot drift from the database.
type index struct {
	mu sync.RWMutex

	// slots is an open-addressing table over the first 8 bytes of a key's
	// SHA-256 (uniformly distributed): 0 is empty, otherwise position+1 in keys.
	slots []uint32
	keys  []keyRecord

	accounts   []accountRecord
	accountPos map[uint64]uint32

	plans   []Plan
	planPos map[string]uint16

	text []byte // arena for names, hints, scopes and sites
}

type textRef struct{ off, n uint32 }

const noParent = -1

type keyRecord struct {
	hash       [32]byte
	id         uint64
	account    uint32
	alias      bool
	status     uint8
	expiresAt  int64 // unix seconds; 0 = never
	validUntil int64 // unix seconds; 0 = not a reset key in grace
	name       textRef
	hint       textRef
	scopes     textRef // rules joined by ","
	sites      textRef // host patterns joined by ","
}

type accountRecord struct {
	id      uint64
	parent  int32 // position in accounts, or noParent
	primary int32 // position in keys of the current primary key, or -1
	plan    uint16
	status  uint8
	credits int64
}

// Statuses are kept as small numbers in records.
var keyStatuses = []string{KeyActive, KeyInactive, KeyExpired, KeyRevoked}
var accountStatuses = []string{AccountActive, AccountSuspended}

func statusCode(list []string, s string) uint8 {
	for i, v := range list {
		if v == s {
			return uint8(i)
		}
	}
	return 0
}

func newIndex() *index {
	return &index{
		slots:      make([]uint32, 1024),
		accountPos: make(map[uint64]uint32),
		planPos:    make(map[string]uint16),
	}
}

func (ix *index) str(r textRef) string { return string(ix.text[r.off : r.off+r.n]) }

// putText stores s in the arena, reusing old when it already holds s so that
// reloading an unchanged record does not grow the arena.
func (ix *index) putText(old textRef, s string) textRef {
	if old.n == uint32(len(s)) && string(ix.text[old.off:old.off+old.n]) == s {
		return old
	}
	if s == "" {
		return textRef{}
	}
	r := textRef{off: uint32(len(ix.text)), n: uint32(len(s))}
	ix.text = append(ix.text, s...)
	return r
}

func slotOf(hash *[32]byte, mask uint64) uint64 {
	return binary.LittleEndian.Uint64(hash[:8]) & mask
}

// find returns the position of the key with this hash.
func (ix *index) find(hash *[32]byte) (uint32, bool) {
	mask := uint64(len(ix.slots) - 1)
	for i := slotOf(hash, mask); ; i = (i + 1) & mask {
		s := ix.slots[i]
		if s == 0 {
			return 0, false
		}
		if ix.keys[s-1].hash == *hash {
			return s - 1, true
		}
	}
}

// reserve grows the table so that n keys keep the load factor under 0.7.
func (ix *index) reserve(n int) {
	size := len(ix.slots)
	for n*10 > size*7 {
		size *= 2
	}
	if size == len(ix.slots) {
		return
	}
	ix.slots = make([]uint32, size)
	mask := uint64(size - 1)
	for pos := range ix.keys {
		i := slotOf(&ix.keys[pos].hash, mask)
		for ix.slots[i] != 0 {
			i = (i + 1) & mask
		}
		ix.slots[i] = uint32(pos) + 1
	}
}

func (ix *index) insert(rec keyRecord) uint32 {
	ix.reserve(len(ix.keys) + 1)
	pos := uint32(len(ix.keys))
	ix.keys = append(ix.keys, rec)
	mask := uint64(len(ix.slots) - 1)
	i := slotOf(&rec.hash, mask)
	for ix.slots[i] != 0 {
		i = (i + 1) & mask
	}
	ix.slots[i] = pos + 1
	return pos
}

// keyRow is a key as read from the database, ready to go into the index.
type keyRow struct {
	hash       [32]byte
	id         uint64
	accountID  uint64
	alias      bool
	status     string
	name, hint string
	scopes     string
	sites      string
	expiresAt  int64
	validUntil int64
}

type accountRow struct {
	id       uint64
	parentID uint64 // 0 = none
	plan     string
	status   string
	credits  int64
}

// accountSnapshot is an account and all its keys as committed.
type accountSnapshot struct {
	account accountRow
	keys    []keyRow
}

// upsertAccount must be called with mu held for writing.
func (ix *index) upsertAccount(a accountRow) uint32 {
	pos, ok := ix.accountPos[a.id]
	if !ok {
		pos = uint32(len(ix.accounts))
		ix.accounts = append(ix.accounts, accountRecord{id: a.id, parent: noParent, primary: -1})
		ix.accountPos[a.id] = pos
	}
	rec := &ix.accounts[pos]
	rec.plan = ix.planPos[a.plan]
	rec.status = statusCode(accountStatuses, a.status)
	rec.credits = a.credits
	rec.parent = noParent
	if a.parentID != 0 {
		// A parent is always created before its subaccounts.
		if pp, ok := ix.accountPos[a.parentID]; ok {
			rec.parent = int32(pp)
		}
	}
	return pos
}

// upsertKey must be called with mu held for writing.
func (ix *index) upsertKey(k keyRow, accountPos uint32) {
	pos, ok := ix.find(&k.hash)
	if !ok {
		pos = ix.insert(keyRecord{hash: k.hash})
	}
	rec := &ix.keys[pos]
	rec.id = k.id
	rec.account = accountPos
	rec.alias = k.alias
	rec.status = statusCode(keyStatuses, k.status)
	rec.expiresAt = k.expiresAt
	rec.validUntil = k.validUntil
	rec.name = ix.putText(rec.name, k.name)
	rec.hint = ix.putText(rec.hint, k.hint)
	rec.scopes = ix.putText(rec.scopes, k.scopes)
	rec.sites = ix.putText(rec.sites, k.sites)
	if !k.alias && k.status == KeyActive && k.validUntil == 0 {
		ix.accounts[accountPos].primary = int32(pos)
	}
}

// apply puts committed state into the index.
func (ix *index) apply(plans []Plan, snaps []accountSnapshot) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if plans != nil {
		ix.setPlans(plans)
	}
	for _, s := range snaps {
		pos := ix.upsertAccount(s.account)
		for _, k := range s.keys {
			ix.upsertKey(k, pos)
		}
	}
}

func (ix *index) setPlans(plans []Plan) {
	// Positions of existing plans never change, so account records stay right.
	for _, p := range plans {
		if pos, ok := ix.planPos[p.Name]; ok {
			ix.plans[pos] = p
			continue
		}
		ix.planPos[p.Name] = uint16(len(ix.plans))
		ix.plans = append(ix.plans, p)
	}
}

func (ix *index) setCredits(accountID string, credits int64) {
	id, err := parseID(prefixAccount, accountID)
	if err != nil {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if pos, ok := ix.accountPos[id]; ok {
		ix.accounts[pos].credits = credits
	}
}

// KeyView is what validation needs to know about a key and its account,
// copied out of the index.
type KeyView struct {
	KeyID      string
	Type       string
	Name       string
	Hint       string
	Status     string // as stored; see StatusAt
	ExpiresAt  int64  // unix seconds, 0 = never
	ValidUntil int64  // unix seconds, 0 = no grace deadline
	Scopes     []string
	Sites      []string
	// PrimaryScopes are the rules of the account's primary key; an alias may
	// use only what both its own rules and these allow.
	PrimaryScopes []string

	AccountID       string
	AccountStatus   string
	ParentSuspended bool
	Plan            string
	Credits         int64
	// RateLimitPerMinute is the plan's limit shared by the account's keys;
	// 0 is unlimited.
	RateLimitPerMinute int

	pos uint32 // position in the index, for activity recording
}

// IsPrimary reports whether the key is an account's primary key.
func (v *KeyView) IsPrimary() bool { return v.Type == KeyTypePrimary }

// Check decides whether the key may be used at t. It returns nil or one of
// ErrKeyRevoked, ErrKeyInactive, ErrKeyExpired, ErrAccountSuspended. Expiry
// and grace deadlines apply to the second, whether or not a job has run.
func (v *KeyView) Check(t time.Time) error {
	now := t.Unix()
	switch {
	case v.Status == KeyRevoked:
		return ErrKeyRevoked
	case v.ValidUntil != 0 && now >= v.ValidUntil:
		return ErrKeyRevoked
	case v.Status == KeyExpired, v.ExpiresAt != 0 && now >= v.ExpiresAt:
		return ErrKeyExpired
	case v.Status == KeyInactive:
		return ErrKeyInactive
	case v.AccountStatus != AccountActive || v.ParentSuspended:
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

// AllowsSite reports whether the site (its home URL) may use the key.
func (v *KeyView) AllowsSite(site string) bool { return SiteAllowed(v.Sites, site) }

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// lookup copies out the key with this hash.
func (ix *index) lookup(hash *[32]byte) (KeyView, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	pos, ok := ix.find(hash)
	if !ok {
		return KeyView{}, false
	}
	k := &ix.keys[pos]
	a := &ix.accounts[k.account]
	v := KeyView{
		KeyID:              formatID(prefixKey, k.id),
		Type:               KeyTypePrimary,
		Name:               ix.str(k.name),
		Hint:               ix.str(k.hint),
		Status:             keyStatuses[k.status],
		ExpiresAt:          k.expiresAt,
		ValidUntil:         k.validUntil,
		Scopes:             splitList(ix.str(k.scopes)),
		Sites:              splitList(ix.str(k.sites)),
		AccountID:          formatID(prefixAccount, a.id),
		AccountStatus:      accountStatuses[a.status],
		Plan:               ix.plans[a.plan].Name,
		RateLimitPerMinute: rateLimit(ix.plans[a.plan]),
		Credits:            a.credits,
		pos:                pos,
	}
	if k.alias {
		v.Type = KeyTypeAlias
		if a.primary >= 0 {
			v.PrimaryScopes = splitList(ix.str(ix.keys[a.primary].scopes))
		} else {
			v.PrimaryScopes = []string{}
		}
	}
	if a.parent != noParent {
		v.ParentSuspended = ix.accounts[a.parent].status != statusCode(accountStatuses, AccountActive)
	}
	return v, true
}

func rateLimit(p Plan) int {
	if p.RateLimitPerMinute == nil {
		return 0
	}
	return *p.RateLimitPerMinute
}

func (ix *index) keyID(pos uint32) string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return formatID(prefixKey, ix.keys[pos].id)
}

// counts returns how many keys and accounts the index holds.
func (ix *index) counts() (keys, accounts int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.keys), len(ix.accounts)
}

// LookupKey finds a key by its SHA-256 in memory. It never touches SQLite.
func (db *DB) LookupKey(hash [32]byte) (KeyView, bool) { return db.index.lookup(&hash) }

// IndexCounts reports how many keys and accounts are held in memory.
func (db *DB) IndexCounts() (keys, accounts int) { return db.index.counts() }
