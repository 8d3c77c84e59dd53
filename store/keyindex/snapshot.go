package keyindex

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unsafe"
)

// An index snapshot holds the index's arrays as they are in memory, each a
// section with its CRC-32C, and the little the index keeps outside them
// (plans, the keys' own limits), for the store to write with its header and
// to check against the database when it reads one back. This file writes and
// reads the sections and checks their structure; what a snapshot must match
// in the database is the store's to check. What validations recorded
// (Index.acts) is not part of a snapshot.

// snapshotPiece is how much of a snapshot is read at a time.
const snapshotPiece = 8 << 20

// Snapshot is what a snapshot file holds of the index besides its arrays.
type Snapshot struct {
	// Plans are in the order of their positions in the account records.
	Plans    []Plan          `json:"plans"`
	Limits   []SnapshotLimit `json:"limits"`
	Sections []Section       `json:"sections"` // in file order
}

// SnapshotLimit is a key's own limits and what it spent.
type SnapshotLimit struct {
	Pos         uint32 `json:"pos"`
	SpendLimit  int64  `json:"spend_limit"`
	SpendPeriod uint8  `json:"spend_period"`
	PeriodStart int64  `json:"period_start"`
	Spent       int64  `json:"spent"`
	MaxSites    int32  `json:"max_sites"`
}

// Section is one array of a snapshot.
type Section struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
	CRC   uint32 `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// RecordSizes are the sizes of a key's and an account's record: a snapshot
// written by a build with other sizes cannot be read.
func RecordSizes() (key, account int) {
	return int(unsafe.Sizeof(keyRecord{})), int(unsafe.Sizeof(accountRecord{}))
}

// sections are the index's arrays in the order a snapshot holds them.
func (ix *Index) sections() []struct {
	name string
	data []byte
} {
	return []struct {
		name string
		data []byte
	}{
		{"slots", bytesOf(ix.slots.s)},
		{"keys", bytesOf(ix.keys.s)},
		{"accounts", bytesOf(ix.accounts.s)},
		{"account_slots", bytesOf(ix.accountTable.slots.s)},
		{"texts", bytesOf(ix.texts.s)},
		{"text", ix.text.s},
	}
}

// WriteSnapshot writes a snapshot of the index under its read lock:
// header is called with how many keys it holds and with what goes into the
// snapshot besides its arrays, writes the file's header to w (or returns an
// error, which WriteSnapshot returns), and the arrays follow.
func (ix *Index) WriteSnapshot(w io.Writer, header func(keys int, s Snapshot) error) error {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s := Snapshot{Plans: ix.plans}
	for pos, l := range ix.limits {
		s.Limits = append(s.Limits, SnapshotLimit{Pos: pos, SpendLimit: l.spendLimit, SpendPeriod: l.spendPeriod,
			PeriodStart: l.spend.Start, Spent: l.spend.Spent, MaxSites: l.maxSites})
	}
	for _, sec := range ix.sections() {
		s.Sections = append(s.Sections, Section{Name: sec.name, Bytes: int64(len(sec.data)), CRC: crc32.Checksum(sec.data, castagnoli)})
	}
	if err := header(len(ix.keys.s), s); err != nil {
		return err
	}
	for _, sec := range ix.sections() {
		if _, err := w.Write(sec.data); err != nil {
			return err
		}
	}
	return nil
}

// ReadSnapshot reads the arrays of a snapshot described by s from r into a
// new index and checks its structure.
func ReadSnapshot(r io.Reader, s Snapshot) (_ *Index, err error) {
	ix := New()
	defer func() {
		if err != nil {
			ix.Release()
		}
	}()
	if err := ix.readSections(r, s.Sections); err != nil {
		return nil, err
	}
	ix.setPlans(s.Plans)
	for _, l := range s.Limits {
		ix.limits[l.Pos] = keyLimits{spendLimit: l.SpendLimit, spendPeriod: l.SpendPeriod,
			spend: Spend{Start: l.PeriodStart, Spent: l.Spent}, maxSites: l.MaxSites}
	}
	if err := ix.checkStructure(); err != nil {
		return nil, err
	}
	return ix, nil
}

// readSections reads the arrays into fresh memory, checking each against
// its checksum.
func (ix *Index) readSections(r io.Reader, sections []Section) error {
	want := []string{"slots", "keys", "accounts", "account_slots", "texts", "text"}
	if len(sections) != len(want) {
		return errors.New("snapshot: unexpected sections")
	}
	count := func(s Section, size uintptr) (int, error) {
		if s.Bytes < 0 || s.Bytes%int64(size) != 0 || s.Bytes/int64(size) > 1<<32 {
			return 0, fmt.Errorf("snapshot: section %s has a bad length", s.Name)
		}
		return int(s.Bytes / int64(size)), nil
	}
	for i, s := range sections {
		if s.Name != want[i] {
			return fmt.Errorf("snapshot: section %s where %s was expected", s.Name, want[i])
		}
		var data []byte
		switch s.Name {
		case "slots":
			n, err := count(s, 8)
			if err != nil || n == 0 || n&(n-1) != 0 {
				return errors.New("snapshot: the slot table is not a power of two")
			}
			ix.slots.release()
			ix.slots = makeBigArray[uint64](n, 0)
			data = bytesOf(ix.slots.s)
		case "keys":
			n, err := count(s, unsafe.Sizeof(keyRecord{}))
			if err != nil {
				return err
			}
			ix.keys = makeBigArray[keyRecord](n, spareCapacity(n, 0))
			ix.acts = makeSparseArray[Activity](n, spareCapacity(n, 0))
			data = bytesOf(ix.keys.s)
		case "accounts":
			n, err := count(s, unsafe.Sizeof(accountRecord{}))
			if err != nil {
				return err
			}
			ix.accounts = makeBigArray[accountRecord](n, 0)
			data = bytesOf(ix.accounts.s)
		case "account_slots":
			n, err := count(s, 4)
			if err != nil || n == 0 || n&(n-1) != 0 {
				return errors.New("snapshot: the account table is not a power of two")
			}
			ix.accountTable.release()
			ix.accountTable.slots = makeBigArray[uint32](n, 0)
			data = bytesOf(ix.accountTable.slots.s)
		case "texts":
			n, err := count(s, unsafe.Sizeof(keyTexts{}))
			if err != nil || n == 0 {
				return errors.New("snapshot: the key texts are missing")
			}
			ix.texts.release()
			ix.texts = makeBigArray[keyTexts](n, 0)
			data = bytesOf(ix.texts.s)
		case "text":
			n, err := count(s, 1)
			if err != nil {
				return err
			}
			ix.text = makeBigArray[byte](n, 0)
			data = ix.text.s
		}
		// A piece at a time, each checksummed while it is still in the
		// CPU's cache: one read of hundreds of megabytes into memory asking
		// for huge pages took up to ten times as long.
		var crc uint32
		for off := 0; off < len(data); off += snapshotPiece {
			piece := data[off:min(off+snapshotPiece, len(data))]
			if _, err := io.ReadFull(r, piece); err != nil {
				return fmt.Errorf("snapshot: section %s: %w", s.Name, err)
			}
			crc = crc32.Update(crc, castagnoli, piece)
		}
		if crc != s.CRC {
			return fmt.Errorf("snapshot: section %s: checksum does not match", s.Name)
		}
	}
	return nil
}

// checkStructure checks that every position and text reference in the
// arrays points inside them, so that a damaged snapshot that passed its
// checksums still cannot make a lookup read out of bounds.
func (ix *Index) checkStructure() error {
	nKeys, nAccounts, nText := uint64(len(ix.keys.s)), len(ix.accounts.s), uint64(len(ix.text.s))
	textOK := func(r textRef) bool { return uint64(r.off)+uint64(r.n) <= nText }
	used := 0
	for _, s := range ix.slots.s {
		if s == 0 {
			continue
		}
		used++
		if uint64(uint32(s)-1) >= nKeys {
			return errors.New("snapshot: a slot points past the keys")
		}
	}
	if uint64(used) != nKeys || used*10 > len(ix.slots.s)*7 {
		return errors.New("snapshot: the slot table does not match the keys")
	}
	used = 0
	for _, s := range ix.accountTable.slots.s {
		if s == 0 {
			continue
		}
		used++
		if int(s-1) >= nAccounts {
			return errors.New("snapshot: an account slot points past the accounts")
		}
	}
	if used != nAccounts || used*2 > len(ix.accountTable.slots.s) {
		return fmt.Errorf("snapshot: the account table does not match the accounts (%d slots used of %d for %d accounts)",
			used, len(ix.accountTable.slots.s), nAccounts)
	}
	if ix.texts.s[0] != (keyTexts{}) {
		return errors.New("snapshot: the first key texts are not empty")
	}
	for i, t := range ix.texts.s {
		if !textOK(t.name) || !textOK(t.scopes) || !textOK(t.sites) {
			return fmt.Errorf("snapshot: key texts %d are damaged", i)
		}
	}
	for i := range ix.keys.s {
		k := &ix.keys.s[i]
		if int(k.account) >= nAccounts || int(k.status) >= len(keyStatuses) || int(k.texts) >= len(ix.texts.s) {
			return fmt.Errorf("snapshot: key record %d is damaged", i)
		}
		if _, ok := ix.limits[uint32(i)]; ok != k.limited {
			return fmt.Errorf("snapshot: key record %d and its limits disagree", i)
		}
	}
	for i := range ix.accounts.s {
		a := &ix.accounts.s[i]
		if int(a.plan) >= len(ix.plans) || int(a.status) >= len(accountStatuses) || !textOK(a.primaryScopes) ||
			(a.parent != noParent && (a.parent < 0 || int(a.parent) >= nAccounts)) {
			return fmt.Errorf("snapshot: account record %d is damaged", i)
		}
	}
	for pos, l := range ix.limits {
		if uint64(pos) >= nKeys || int(l.spendPeriod) >= len(spendPeriods) {
			return errors.New("snapshot: a key limit is damaged")
		}
	}
	return nil
}
