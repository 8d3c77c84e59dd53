package keyindex

import (
	"encoding/binary"
	"math"
	"strings"
	"sync"
)

// Index holds every key and account in memory so that validation never
// touches the database, however many keys are stored and however many
// requests carry unknown keys. Records are small fixed structs without
// pointers (the garbage collector does not scan them) and strings live in
// one append-only byte arena. The store changes it only from committed
// database state, so it cannot drift from the database.
type Index struct {
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
	acts bigArray[Activity]

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
	spend       Spend
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
	// that reached the index (see Entry.StateVersion).
	version uint64
}

// Statuses are kept as small numbers in records.
var keyStatuses = []string{Active, Inactive, Expired, Revoked}
var accountStatuses = []string{AccountActive, AccountSuspended}

// KeyStatuses are the stored key statuses in the order of their numbers in
// records, for readers that fetch a key's status as its number.
func KeyStatuses() []string { return keyStatuses }

func statusCode(list []string, s string) uint8 {
	for i, v := range list {
		if v == s {
			return uint8(i)
		}
	}
	return 0
}

// New returns an empty index.
func New() *Index {
	return &Index{
		slots:        makeBigArray[uint64](1024, 0),
		acts:         makeSparseArray[Activity](0, 0),
		accountTable: newAccountTable(),
		planPos:      make(map[string]uint16),
		common:       make(map[string]textRef),
		limits:       make(map[uint32]keyLimits),
		texts:        makeBigArray[keyTexts](1, 0),
		textsPos:     map[keyTexts]uint32{{}: 0},
	}
}

// Release gives the index's large arrays back and leaves it empty: for
// closing the store, after which lookups find nothing.
func (ix *Index) Release() {
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

// putText stores s in the arena, reusing old when it already holds s so that
// reloading an unchanged record does not grow the arena. Texts that are
// likely to repeat (names, scopes, sites: not hints) are shared.
func (ix *Index) putText(old textRef, s string, share bool) textRef {
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
func (ix *Index) putTexts(t keyTexts) uint32 {
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
func (ix *Index) find(hash *[32]byte) (uint32, bool) {
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

// Reserve grows the table so that n keys keep the load factor under 0.7,
// and the records' array so that n keys fit without growing it again.
func (ix *Index) Reserve(n int) {
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

func (ix *Index) insert(rec keyRecord) uint32 {
	ix.Reserve(len(ix.keys.s) + 1)
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

// KeyRow is a key as read from the database, ready to go into the index.
type KeyRow struct {
	Hash       [32]byte
	ID         uint64 // the number in its id
	AccountID  uint64 // the number in its account's id
	Alias      bool
	Status     string // as stored
	Name, Hint string
	Scopes     string // rules joined by ","
	Sites      string // host patterns joined by ","
	ExpiresAt  int64  // unix seconds; 0 = never
	ValidUntil int64  // unix seconds; 0 = no grace deadline
	ReplacedAt int64  // a primary key replaced by a reset: when
	// SpendLimit is the key's own cap (0 = none) per SpendPeriod (one of
	// PeriodDay, PeriodMonth, PeriodTotal), and Spend what it spent.
	SpendLimit  int64
	SpendPeriod string
	Spend       Spend
	MaxSites    int32 // 0 = none
}

// Spend is what a limited key spent in the period that began at Start
// (unix seconds; -1 = nothing spent yet).
type Spend struct {
	Start, Spent int64
}

// AccountRow is an account as read from the database.
type AccountRow struct {
	ID       uint64 // the number in its id
	ParentID uint64 // 0 = none
	Plan     string
	Status   string
	Credits  int64
}

// AccountSnapshot is an account and all its keys as committed.
type AccountSnapshot struct {
	Account AccountRow
	Keys    []KeyRow
}

// Plan is what the index keeps of a plan.
type Plan struct {
	Name string `json:"name"`
	// RateLimitPerMinute is the limit shared by an account's keys; nil is
	// unlimited.
	RateLimitPerMinute *int `json:"rate_limit_per_minute"`
}

// Account statuses, as the HTTP contract names them.
const (
	AccountActive    = "active"
	AccountSuspended = "suspended"
)

// Spend periods: a UTC day, a UTC month, or the key's whole life.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
	PeriodTotal = "total"
)

// spendPeriods are kept as small numbers in the index; 0 is no limit.
var spendPeriods = []string{"", PeriodDay, PeriodMonth, PeriodTotal}

// accountPos is the position of the account with this id.
func (ix *Index) accountPos(id uint64) (uint32, bool) { return ix.accountTable.find(ix.accounts.s, id) }

// AccountPos is the position of the account with this id, for AddKey.
// Only for an index not yet shared (one being loaded).
func (ix *Index) AccountPos(id uint64) (uint32, bool) { return ix.accountPos(id) }

// AddAccount puts an account into an index not yet shared (one being
// loaded); a parent must come before its subaccounts.
func (ix *Index) AddAccount(a AccountRow) { ix.upsertAccount(a) }

// upsertAccount must be called with mu held for writing.
func (ix *Index) upsertAccount(a AccountRow) uint32 {
	pos, ok := ix.accountPos(a.ID)
	if !ok {
		pos = uint32(len(ix.accounts.s))
		ix.accounts.reserve(1)
		ix.accounts.s = append(ix.accounts.s, accountRecord{id: a.ID, parent: noParent}) // within capacity
		ix.accountTable.insert(ix.accounts.s)
	}
	rec := &ix.accounts.s[pos]
	rec.version++
	rec.plan = ix.planPos[a.Plan]
	rec.status = statusCode(accountStatuses, a.Status)
	rec.credits = a.Credits
	rec.parent = noParent
	if a.ParentID != 0 {
		// A parent is always created before its subaccounts.
		if pp, ok := ix.accountPos(a.ParentID); ok {
			rec.parent = int32(pp)
		}
	}
	return pos
}

// upsertKey must be called with mu held for writing.
func (ix *Index) upsertKey(k KeyRow, accountPos uint32) {
	pos, ok := ix.find(&k.Hash)
	if !ok {
		pos = ix.insert(keyRecord{hash: k.Hash})
	}
	ix.setKey(pos, &k, accountPos)
}

// AddKey inserts a key known not to be in the index yet (a fresh index,
// not yet shared, filled from a table whose hash column is unique), skipping
// the lookup. accountPos is its account's (see AccountPos).
func (ix *Index) AddKey(k *KeyRow, accountPos uint32) {
	ix.setKey(ix.insert(keyRecord{hash: k.Hash}), k, accountPos)
}

func (ix *Index) setKey(pos uint32, k *KeyRow, accountPos uint32) {
	rec := &ix.keys.s[pos]
	rec.id = k.ID
	rec.account = accountPos
	rec.alias = k.Alias
	rec.status = statusCode(keyStatuses, k.Status)
	rec.expiresAt = unix32(k.ExpiresAt)
	rec.validUntil = unix32(k.ValidUntil)
	rec.hint = [4]byte{}
	copy(rec.hint[:], k.Hint)
	old := ix.texts.s[rec.texts]
	texts := keyTexts{name: ix.putText(old.name, k.Name, true), scopes: ix.putText(old.scopes, k.Scopes, true),
		sites: ix.putText(old.sites, k.Sites, true)}
	if texts != old {
		rec.texts = ix.putTexts(texts)
	}
	if !k.Alias && k.Status == Active && k.ValidUntil == 0 {
		ix.accounts.s[accountPos].primaryScopes = texts.scopes
	}
	if a := &ix.accounts.s[accountPos]; !k.Alias && k.ReplacedAt > a.replacedAt {
		a.replacedAt = k.ReplacedAt
	}
	rec.limited = k.SpendLimit > 0 || k.MaxSites > 0
	if rec.limited {
		ix.limits[pos] = keyLimits{spendLimit: k.SpendLimit, spendPeriod: statusCode(spendPeriods, k.SpendPeriod),
			spend: k.Spend, maxSites: k.MaxSites}
	} else {
		delete(ix.limits, pos)
	}
}

// SpendLimit is the spend limit of the key at pos and its period; 0 and ""
// for none.
func (ix *Index) SpendLimit(pos uint32) (limit int64, period string) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if int(pos) >= len(ix.keys.s) || !ix.keys.s[pos].limited {
		return 0, ""
	}
	l := ix.limits[pos]
	if l.spendLimit == 0 {
		return 0, ""
	}
	return l.spendLimit, spendPeriods[l.spendPeriod]
}

// ResetSpent forgets what every key with limits of its own spent (as if
// nothing was, until SetSpent): for reading what they spent afresh.
func (ix *Index) ResetSpent() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for pos, l := range ix.limits {
		l.spend = Spend{Start: -1}
		ix.limits[pos] = l
	}
}

// KeyPos is the position of the key with this hash.
func (ix *Index) KeyPos(hash *[32]byte) (uint32, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.find(hash)
}

// SetSpent records what the key at pos has spent, after a charge committed.
func (ix *Index) SetSpent(pos uint32, s Spend) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if l, ok := ix.limits[pos]; ok {
		l.spend = s
		ix.limits[pos] = l
	}
}

// Apply puts committed state into the index: the plans unless nil, and
// each account with all its keys.
func (ix *Index) Apply(plans []Plan, accounts []AccountSnapshot) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if plans != nil {
		ix.setPlans(plans)
	}
	for _, s := range accounts {
		pos := ix.upsertAccount(s.Account)
		for _, k := range s.Keys {
			ix.upsertKey(k, pos)
		}
	}
}

func (ix *Index) setPlans(plans []Plan) {
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

// SetCredits records an account's credits, changed without a change to
// the account itself (a charge).
func (ix *Index) SetCredits(id uint64, credits int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if pos, ok := ix.accountPos(id); ok {
		ix.accounts.s[pos].credits = credits
	}
}

// Entry is what validation needs to know about a key and its account,
// copied out of the index (see Lookup).
type Entry struct {
	KeyID      string
	KeyNum     uint64 // the number in KeyID
	Alias      bool
	Name       string
	Hint       string
	Status     string // as stored; see Status
	ExpiresAt  int64  // unix seconds, 0 = never
	ValidUntil int64  // unix seconds, 0 = no grace deadline
	// ReplacedAt is when a primary key with a grace deadline was replaced
	// by a reset, unix seconds; 0 otherwise.
	ReplacedAt    int64
	Scopes        []string
	Sites         []string
	PrimaryScopes []string // of the account's primary key, for an alias

	AccountID       string
	AccountNum      uint64 // the number in AccountID
	AccountStatus   string
	ParentSuspended bool
	Plan            string
	// RateLimitPerMinute is the plan's limit; 0 is unlimited.
	RateLimitPerMinute int
	Credits            int64
	// StateVersion changes whenever the account or any of its keys changes
	// in the index, though not when credits are spent.
	StateVersion uint64

	// SpendLimit is the key's own cap (0 = none) per SpendPeriod, and Spend
	// what it spent.
	SpendLimit  int64
	SpendPeriod string
	Spend       Spend
	MaxSites    int // 0 = any number of sites

	Pos uint32 // position in the index, for the key's activity
}

// Lookup copies out the key with this hash. It runs on every validation, so
// the copy is made with two allocations: one string holding the ids and all
// texts, which the entry's strings are pieces of, and one slice that its
// lists share.
func (ix *Index) Lookup(hash *[32]byte) (Entry, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	pos, ok := ix.find(hash)
	if !ok {
		return Entry{}, false
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
	all.Write(appendID(idBuf[:0], PrefixKey, k.id))
	all.Write(appendID(idBuf[:0], PrefixAccount, a.id))
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

	plan := &ix.plans[a.plan]
	e := Entry{
		KeyID:         next(idLength),
		AccountID:     next(idLength),
		AccountNum:    a.id,
		Name:          next(texts.name.n),
		Hint:          next(uint32(len(hint))),
		Alias:         k.alias,
		Status:        keyStatuses[k.status],
		ExpiresAt:     int64(k.expiresAt),
		ValidUntil:    int64(k.validUntil),
		AccountStatus: accountStatuses[a.status],
		Plan:          plan.Name,
		Credits:       a.credits,
		StateVersion:  a.version,
		Pos:           pos,
		KeyNum:        k.id,
	}
	if plan.RateLimitPerMinute != nil {
		e.RateLimitPerMinute = *plan.RateLimitPerMinute
	}
	if !k.alias && k.validUntil != 0 {
		e.ReplacedAt = a.replacedAt
	}
	scopes, sites, primary := next(texts.scopes.n), next(texts.sites.n), next(primaryScopes.n)
	lists := make([]string, 0, listLength(scopes)+listLength(sites)+listLength(primary))
	e.Scopes, lists = splitInto(lists, scopes)
	e.Sites, lists = splitInto(lists, sites)
	if k.alias {
		e.PrimaryScopes, _ = splitInto(lists, primary)
	}
	if k.limited {
		l := ix.limits[pos]
		if l.spendLimit > 0 {
			e.SpendLimit, e.SpendPeriod, e.Spend = l.spendLimit, spendPeriods[l.spendPeriod], l.spend
		}
		e.MaxSites = int(l.maxSites)
	}
	if a.parent != noParent {
		e.ParentSuspended = ix.accounts.s[a.parent].status != statusCode(accountStatuses, AccountActive)
	}
	return e, true
}

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

// KeyOwner is the account id and key id of the key at pos.
func (ix *Index) KeyOwner(pos uint32) (accountID, keyID string) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	k := &ix.keys.s[pos]
	return FormatID(PrefixAccount, ix.accounts.s[k.account].id), FormatID(PrefixKey, k.id)
}

// KeyNumber is the number a key's id is made of; ids sort as their numbers.
func (ix *Index) KeyNumber(pos uint32) uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.keys.s[pos].id
}

// Counts returns how many keys and accounts the index holds.
func (ix *Index) Counts() (keys, accounts int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.keys.s), len(ix.accounts.s)
}
