package store

import (
	"encoding/binary"
	"math"
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
	// SHA-256 (uniformly distributed): 0 is empty, otherwise a slot (see
	// makeSlot) with the key's position in keys and a fingerprint of its
	// hash, so that an unknown key is almost always turned away by the table
	// alone, without reading a record.
	// Both, like the account records and the text arena, are bigArrays:
	// see bigarray.go for the rule that comes with them.
	slots bigArray[uint64]
	keys  bigArray[keyRecord]
	// acts holds what validations saw of each key since the last flush, by
	// the key's position in keys (the two always have the same length). It
	// is apart from the records because it is mostly zero, and so mostly
	// never resident (see makeSparseArray), and because snapshots leave it
	// out.
	acts bigArray[keyActivity]

	accounts     bigArray[accountRecord]
	accountTable accountTable // finds an account's position by its id

	plans   []Plan
	planPos map[string]uint16

	// limits holds the few keys with limits of their own, by position,
	// outside the records so that the records of all other keys stay small.
	limits map[uint32]keyLimits

	// texts holds the distinct keyTexts; textsPos finds those that are
	// shared, as common does for texts. Entry 0 is all empty.
	texts    bigArray[keyTexts]
	textsPos map[keyTexts]uint32

	text bigArray[byte] // arena for names, scopes and sites
	// common remembers where short, often repeated texts (the primary key's
	// name, "*" scopes, alias names reused across accounts) already are in
	// the arena, so that a million keys do not store them a million times.
	common map[string]textRef
}

// Bounds of the common-text table: only short texts, and not without limit.
const (
	maxCommonText  = 32
	maxCommonTexts = 1 << 14
)

type textRef struct{ off, n uint32 }

const noParent = -1

type keyRecord struct {
	hash       [32]byte
	id         uint64
	account    uint32
	expiresAt  uint32  // unix seconds; 0 = never (see unix32)
	validUntil uint32  // unix seconds; 0 = not a reset key in grace
	texts      uint32  // position in index.texts: the key's name, scopes and sites
	hint       [4]byte // the key's last four characters
	alias      bool
	status     uint8
	limited    bool // the key has an entry in index.limits
}

// keyTexts are a key's name and its rules, kept apart from its record
// because most keys share them with many others (a primary key's name, "*"
// scopes, no sites): a record holds only their position, which keeps it at
// one cache line.
type keyTexts struct {
	name   textRef
	scopes textRef // rules joined by ","
	sites  textRef // host patterns joined by ","
}

// unix32 is a time of the index, unix seconds, in the 32 bits its records
// keep: enough until 2106, and later times (or nonsense) are 2106.
func unix32(sec int64) uint32 { return uint32(min(max(sec, 0), math.MaxUint32)) }

// keyLimits are a key's own limits and what it has spent against them.
type keyLimits struct {
	spendLimit  int64
	spendPeriod uint8 // in spendPeriods
	spend       spendState
	maxSites    int32 // 0 = sites are not counted
}

type accountRecord struct {
	id     uint64
	parent int32 // position in accounts, or noParent
	// primaryScopes are the rules of the current primary key (none without
	// one), kept here so that validating an alias need not read its primary.
	primaryScopes textRef
	plan          uint16
	status        uint8
	credits       int64
	// replacedAt is when the account's primary key in grace (a reset allows
	// at most one) was replaced, unix seconds: kept here because a key's
	// record has no room left. The latest reset's key is the one in grace.
	replacedAt int64
	// version counts the committed changes to the account and its keys
	// that reached the index (see KeyView.StateVersion).
	version uint64
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
		slots:        makeBigArray[uint64](1024, 0),
		acts:         makeSparseArray[keyActivity](0, 0),
		accountTable: newAccountTable(),
		planPos:      make(map[string]uint16),
		common:       make(map[string]textRef),
		limits:       make(map[uint32]keyLimits),
		texts:        makeBigArray[keyTexts](1, 0),
		textsPos:     map[keyTexts]uint32{{}: 0},
	}
}

// release gives the index's large arrays back and leaves it empty: for
// DB.Close, after which lookups find nothing.
func (ix *index) release() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.keys.release()
	ix.acts.release()
	ix.accounts.release()
	ix.accountTable.release()
	ix.accountTable = newAccountTable()
	ix.text.release()
	ix.texts.release()
	ix.slots.release()
	ix.slots = makeBigArray[uint64](1024, 0)
	ix.texts = makeBigArray[keyTexts](1, 0)
	ix.textsPos = map[keyTexts]uint32{{}: 0}
	ix.common = make(map[string]textRef)
	ix.limits = make(map[uint32]keyLimits)
}

func (ix *index) str(r textRef) string { return string(ix.text.s[r.off : r.off+r.n]) }

// putText stores s in the arena, reusing old when it already holds s so that
// reloading an unchanged record does not grow the arena. Texts that are
// likely to repeat (names, scopes, sites: not hints) are shared.
func (ix *index) putText(old textRef, s string, share bool) textRef {
	if old.n == uint32(len(s)) && string(ix.text.s[old.off:old.off+old.n]) == s {
		return old
	}
	if s == "" {
		return textRef{}
	}
	share = share && len(s) <= maxCommonText
	if share {
		if r, ok := ix.common[s]; ok {
			return r
		}
	}
	r := textRef{off: uint32(len(ix.text.s)), n: uint32(len(s))}
	ix.text.reserve(len(s))
	ix.text.s = append(ix.text.s, s...) // within capacity: reserve made room
	if share && len(ix.common) < maxCommonTexts {
		ix.common[s] = r
	}
	return r
}

// putTexts returns the position of t in texts, adding it unless it is
// there already; like putText, only so many are looked up.
func (ix *index) putTexts(t keyTexts) uint32 {
	if pos, ok := ix.textsPos[t]; ok {
		return pos
	}
	pos := uint32(len(ix.texts.s))
	ix.texts.reserve(1)
	ix.texts.s = append(ix.texts.s, t) // within capacity: reserve made room
	if len(ix.textsPos) < maxCommonTexts {
		ix.textsPos[t] = pos
	}
	return pos
}

// hintOf is the hint kept in a record, without the zero bytes of a shorter
// one.
func hintOf(h *[4]byte) []byte {
	n := 0
	for n < len(h) && h[n] != 0 {
		n++
	}
	return h[:n]
}

func slotOf(hash *[32]byte, mask uint64) uint64 {
	return binary.LittleEndian.Uint64(hash[:8]) & mask
}

// makeSlot packs a key's position (plus one, so that no slot is 0) with a
// fingerprint: bytes 8 to 11 of its hash, independent of the bits that chose
// the slot.
func makeSlot(hash *[32]byte, pos uint32) uint64 {
	return uint64(binary.LittleEndian.Uint32(hash[8:12]))<<32 | uint64(pos+1)
}

// find returns the position of the key with this hash.
func (ix *index) find(hash *[32]byte) (uint32, bool) {
	slots, keys := ix.slots.s, ix.keys.s
	mask := uint64(len(slots) - 1)
	fingerprint := makeSlot(hash, 0) >> 32
	for i := slotOf(hash, mask); ; i = (i + 1) & mask {
		s := slots[i]
		if s == 0 {
			return 0, false
		}
		pos := uint32(s) - 1
		if s>>32 == fingerprint && keys[pos].hash == *hash {
			return pos, true
		}
	}
}

// reserve grows the table so that n keys keep the load factor under 0.7,
// and the records' array so that n keys fit without growing it again.
func (ix *index) reserve(n int) {
	ix.keys.reserve(n - len(ix.keys.s))
	ix.acts.reserve(n - len(ix.acts.s))
	size := len(ix.slots.s)
	for n*10 > size*7 {
		size *= 2
	}
	if size == len(ix.slots.s) {
		return
	}
	ix.slots.release()
	ix.slots = makeBigArray[uint64](size, 0)
	slots, mask := ix.slots.s, uint64(size-1)
	for pos := range ix.keys.s {
		hash := &ix.keys.s[pos].hash
		i := slotOf(hash, mask)
		for slots[i] != 0 {
			i = (i + 1) & mask
		}
		slots[i] = makeSlot(hash, uint32(pos))
	}
}

func (ix *index) insert(rec keyRecord) uint32 {
	ix.reserve(len(ix.keys.s) + 1)
	pos := uint32(len(ix.keys.s))
	ix.keys.s = append(ix.keys.s, rec) // within capacity: reserve made room
	ix.acts.extend(1)
	slots := ix.slots.s
	mask := uint64(len(slots) - 1)
	i := slotOf(&rec.hash, mask)
	for slots[i] != 0 {
		i = (i + 1) & mask
	}
	slots[i] = makeSlot(&rec.hash, pos)
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
	replacedAt int64      // a primary key replaced by a reset: when
	spendLimit SpendLimit // Limit 0 = none
	spend      spendState
	maxSites   int32 // 0 = none
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
	account     accountRow
	keys        []keyRow
	activations []activationRow // the sites holding slots of its keys
}

// accountPos is the position of the account with this id.
func (ix *index) accountPos(id uint64) (uint32, bool) { return ix.accountTable.find(ix.accounts.s, id) }

// upsertAccount must be called with mu held for writing.
func (ix *index) upsertAccount(a accountRow) uint32 {
	pos, ok := ix.accountPos(a.id)
	if !ok {
		pos = uint32(len(ix.accounts.s))
		ix.accounts.reserve(1)
		ix.accounts.s = append(ix.accounts.s, accountRecord{id: a.id, parent: noParent}) // within capacity
		ix.accountTable.insert(ix.accounts.s)
	}
	rec := &ix.accounts.s[pos]
	rec.version++
	rec.plan = ix.planPos[a.plan]
	rec.status = statusCode(accountStatuses, a.status)
	rec.credits = a.credits
	rec.parent = noParent
	if a.parentID != 0 {
		// A parent is always created before its subaccounts.
		if pp, ok := ix.accountPos(a.parentID); ok {
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
	ix.setKey(pos, &k, accountPos)
}

// add inserts a key known not to be in the index yet (a fresh index filled
// from a table whose hash column is unique), skipping the lookup.
func (ix *index) add(k *keyRow, accountPos uint32) {
	ix.setKey(ix.insert(keyRecord{hash: k.hash}), k, accountPos)
}

func (ix *index) setKey(pos uint32, k *keyRow, accountPos uint32) {
	rec := &ix.keys.s[pos]
	rec.id = k.id
	rec.account = accountPos
	rec.alias = k.alias
	rec.status = statusCode(keyStatuses, k.status)
	rec.expiresAt = unix32(k.expiresAt)
	rec.validUntil = unix32(k.validUntil)
	rec.hint = [4]byte{}
	copy(rec.hint[:], k.hint)
	old := ix.texts.s[rec.texts]
	texts := keyTexts{name: ix.putText(old.name, k.name, true), scopes: ix.putText(old.scopes, k.scopes, true),
		sites: ix.putText(old.sites, k.sites, true)}
	if texts != old {
		rec.texts = ix.putTexts(texts)
	}
	if !k.alias && k.status == KeyActive && k.validUntil == 0 {
		ix.accounts.s[accountPos].primaryScopes = texts.scopes
	}
	if a := &ix.accounts.s[accountPos]; !k.alias && k.replacedAt > a.replacedAt {
		a.replacedAt = k.replacedAt
	}
	rec.limited = k.spendLimit.Limit > 0 || k.maxSites > 0
	if rec.limited {
		ix.limits[pos] = keyLimits{spendLimit: k.spendLimit.Limit, spendPeriod: statusCode(spendPeriods, k.spendLimit.Period),
			spend: k.spend, maxSites: k.maxSites}
	} else {
		delete(ix.limits, pos)
	}
}

// spendLimit is the spend limit of the key at pos (Limit 0 = none).
func (ix *index) spendLimit(pos uint32) SpendLimit {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if int(pos) >= len(ix.keys.s) || !ix.keys.s[pos].limited {
		return SpendLimit{}
	}
	l := ix.limits[pos]
	if l.spendLimit == 0 {
		return SpendLimit{}
	}
	return SpendLimit{Limit: l.spendLimit, Period: spendPeriods[l.spendPeriod]}
}

// setSpent records what the key at pos has spent, after a charge committed.
func (ix *index) setSpent(pos uint32, s spendState) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if l, ok := ix.limits[pos]; ok {
		l.spend = s
		ix.limits[pos] = l
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
	if pos, ok := ix.accountPos(id); ok {
		ix.accounts.s[pos].credits = credits
	}
}

// KeyView is what validation needs to know about a key and its account,
// copied out of the index.
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

// lookup copies out the key with this hash. It runs on every validation, so
// the copy is made with two allocations: one string holding the ids and all
// texts, which the view's strings are pieces of, and one slice that its lists
// share.
func (ix *index) lookup(hash *[32]byte) (KeyView, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	pos, ok := ix.find(hash)
	if !ok {
		return KeyView{}, false
	}
	k := &ix.keys.s[pos]
	a := &ix.accounts.s[k.account]
	var primaryScopes textRef
	if k.alias {
		primaryScopes = a.primaryScopes
	}

	texts := &ix.texts.s[k.texts]
	hint := hintOf(&k.hint)

	var all strings.Builder
	all.Grow(2*idLength + len(hint) + int(texts.name.n+texts.scopes.n+texts.sites.n+primaryScopes.n))
	var idBuf [idLength]byte
	all.Write(appendID(idBuf[:0], prefixKey, k.id))
	all.Write(appendID(idBuf[:0], prefixAccount, a.id))
	all.Write(ix.text.s[texts.name.off : texts.name.off+texts.name.n])
	all.Write(hint)
	for _, r := range [...]textRef{texts.scopes, texts.sites, primaryScopes} {
		all.Write(ix.text.s[r.off : r.off+r.n])
	}
	copied := all.String()
	next := func(n uint32) string {
		p := copied[:n]
		copied = copied[n:]
		return p
	}

	v := KeyView{
		KeyID:              next(idLength),
		AccountID:          next(idLength),
		AccountNum:         a.id,
		Name:               next(texts.name.n),
		Hint:               next(uint32(len(hint))),
		Type:               KeyTypePrimary,
		Status:             keyStatuses[k.status],
		ExpiresAt:          int64(k.expiresAt),
		ValidUntil:         int64(k.validUntil),
		AccountStatus:      accountStatuses[a.status],
		Plan:               ix.plans[a.plan].Name,
		RateLimitPerMinute: rateLimit(ix.plans[a.plan]),
		Credits:            a.credits,
		StateVersion:       a.version,
		pos:                pos,
		num:                k.id,
	}
	if !k.alias && k.validUntil != 0 {
		v.ReplacedAt = a.replacedAt
	}
	scopes, sites, primary := next(texts.scopes.n), next(texts.sites.n), next(primaryScopes.n)
	lists := make([]string, 0, listLength(scopes)+listLength(sites)+listLength(primary))
	v.Scopes, lists = splitInto(lists, scopes)
	v.Sites, lists = splitInto(lists, sites)
	if k.alias {
		v.Type = KeyTypeAlias
		v.PrimaryScopes, _ = splitInto(lists, primary)
	}
	if k.limited {
		l := ix.limits[pos]
		if l.spendLimit > 0 {
			v.SpendLimit = SpendLimit{Limit: l.spendLimit, Period: spendPeriods[l.spendPeriod]}
			v.spend = l.spend
		}
		v.MaxSites = int(l.maxSites)
	}
	if a.parent != noParent {
		v.ParentSuspended = ix.accounts.s[a.parent].status != statusCode(accountStatuses, AccountActive)
	}
	return v, true
}

// idLength is the length of an id: a 4-character prefix and 16 hex digits.
const idLength = 4 + 16

// listLength is how many items the comma-joined list s holds.
func listLength(s string) int {
	if s == "" {
		return 0
	}
	return strings.Count(s, ",") + 1
}

// splitInto appends the items of the comma-joined list s to lists, within
// its capacity, and returns them as a slice of their own (empty, not nil,
// for "") and what remains of lists.
func splitInto(lists []string, s string) (items, rest []string) {
	start := len(lists)
	for s != "" {
		var item string
		item, s, _ = strings.Cut(s, ",")
		lists = append(lists, item)
	}
	return lists[start:len(lists):len(lists)], lists[len(lists):]
}

func rateLimit(p Plan) int {
	if p.RateLimitPerMinute == nil {
		return 0
	}
	return *p.RateLimitPerMinute
}

// keyOwner is the account id and key id of the key at pos.
func (ix *index) keyOwner(pos uint32) (accountID, keyID string) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	k := &ix.keys.s[pos]
	return formatID(prefixAccount, ix.accounts.s[k.account].id), formatID(prefixKey, k.id)
}

// keyNumber is the number a key's id is made of; ids sort as their numbers.
func (ix *index) keyNumber(pos uint32) uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.keys.s[pos].id
}

// counts returns how many keys and accounts the index holds.
func (ix *index) counts() (keys, accounts int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.keys.s), len(ix.accounts.s)
}

// LookupKey finds a key by its SHA-256 in memory. It never touches SQLite.
func (db *DB) LookupKey(hash [32]byte) (KeyView, bool) { return db.index.lookup(&hash) }

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
func (db *DB) IndexCounts() (keys, accounts int) { return db.index.counts() }
