package keyindex

// accountTable finds an account's record in index.accounts by its id. It
// is an open-addressing table of positions in a bigArray, outside the Go
// heap, rather than a map: at ten million keys (two million accounts) a
// map[uint64]uint32 held about 40 MB of heap, with as much again of the
// collector's headroom on top, where this takes 16 MB; and a snapshot
// stores it as it is instead of building it again at every start.
type accountTable struct {
	slots bigArray[uint32] // 0 = empty, otherwise a position plus one
}

func newAccountTable() accountTable { return accountTable{slots: makeBigArray[uint32](64, 0)} }

// slotOf spreads ids over the table: they are random, but a multiplicative
// hash costs nothing and keeps the table even for ids that are not.
func (t *accountTable) slotOf(id uint64) uint64 {
	return (id * 0x9E3779B97F4A7C15) >> 32 & uint64(len(t.slots.s)-1)
}

// find returns the position of the account with this id.
func (t *accountTable) find(accounts []accountRecord, id uint64) (uint32, bool) {
	mask := uint64(len(t.slots.s) - 1)
	for i := t.slotOf(id); ; i = (i + 1) & mask {
		s := t.slots.s[i]
		if s == 0 {
			return 0, false
		}
		if accounts[s-1].id == id {
			return s - 1, true
		}
	}
}

// insert adds the last of accounts, just appended, which find must not know
// yet. The table stays at most half full: when it would be fuller it grows,
// putting every account, the new one included, back.
func (t *accountTable) insert(accounts []accountRecord) {
	if len(accounts)*2 > len(t.slots.s) {
		t.grow(accounts)
		return
	}
	pos := len(accounts) - 1
	t.put(accounts[pos].id, uint32(pos))
}

func (t *accountTable) put(id uint64, pos uint32) {
	mask := uint64(len(t.slots.s) - 1)
	i := t.slotOf(id)
	for t.slots.s[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots.s[i] = pos + 1
}

// grow doubles the table and puts every account back.
func (t *accountTable) grow(accounts []accountRecord) {
	size := len(t.slots.s)
	for len(accounts)*2 > size {
		size *= 2
	}
	t.slots.release()
	t.slots = makeBigArray[uint32](size, 0)
	for pos := range accounts {
		t.put(accounts[pos].id, uint32(pos))
	}
}

func (t *accountTable) release() { t.slots.release() }
