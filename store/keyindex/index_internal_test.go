package keyindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"unsafe"
)

// testIndex builds an index of n keys with one account, without SQLite.
func testIndex(tb testing.TB, n int) (*Index, [][32]byte) {
	tb.Helper()
	ix := New()
	ix.Apply([]Plan{{Name: "pro"}}, nil)
	ix.Reserve(n)
	hashes := make([][32]byte, n)
	for i := range hashes {
		// Five keys to an account, as keyd seed makes them.
		acc := ix.upsertAccount(AccountRow{ID: testAccountOf(i), Plan: "pro", Status: AccountActive})
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		hashes[i] = sha256.Sum256(b[:])
		name := "Primary key"
		if i%5 != 0 {
			name = fmt.Sprintf("Alias %d", i%5)
		}
		ix.AddKey(&KeyRow{Hash: hashes[i], ID: uint64(i) + 1, Alias: i%5 != 0, Status: Active,
			Name: name, Hint: fmt.Sprintf("%04d", i%10000), Scopes: "*"}, acc)
	}
	return ix, hashes
}

// testAccountOf is the account number of testIndex's key i.
func testAccountOf(i int) uint64 { return uint64(i/5) + 1 }

func TestIndexGrowsAndFinds(t *testing.T) {
	// Past bigArrayMin, so the arrays are mapped and regrown at least once.
	ix, hashes := testIndex(t, 40_000)
	defer ix.Release()
	if !ix.keys.mapped {
		t.Log("key records are on the Go heap (no mmap here)")
	}
	for i, h := range hashes {
		v, ok := ix.Lookup(&h)
		if !ok || v.KeyID != FormatID(PrefixKey, uint64(i)+1) || v.Hint != fmt.Sprintf("%04d", i%10000) ||
			v.AccountNum != testAccountOf(i) || v.AccountStatus != AccountActive {
			t.Fatalf("key %d: %+v, %v", i, v, ok)
		}
	}
	if _, ok := ix.Lookup(&[32]byte{1}); ok {
		t.Fatal("found a key that was never added")
	}
	// Updating a key in place keeps one record and changes what is seen.
	ix.Apply(nil, []AccountSnapshot{{Account: AccountRow{ID: testAccountOf(7), Plan: "pro", Status: AccountActive},
		Keys: []KeyRow{{Hash: hashes[7], ID: 8, Alias: true, Status: Inactive, Name: "Renamed", Hint: "0007"}}}})
	if v, _ := ix.Lookup(&hashes[7]); v.Status != Inactive || v.Name != "Renamed" || len(v.Scopes) != 0 {
		t.Fatalf("after update: %+v", v)
	}
	if keys, _ := ix.Counts(); keys != len(hashes) {
		t.Fatalf("index holds %d keys, want %d", keys, len(hashes))
	}
	ix.Release()
	if _, ok := ix.Lookup(&hashes[0]); ok {
		t.Fatal("a released index still finds keys")
	}
}

// Account records are a mapped array too once there are enough of them;
// each keeps its place and its values as the array is moved to grow.
func TestAccountsGrowAndKeepTheirPlace(t *testing.T) {
	ix := New()
	defer ix.Release()
	ix.Apply([]Plan{{Name: "pro"}}, nil)
	n := 2*bigArrayMin/int(unsafe.Sizeof(accountRecord{})) + 1
	for i := range n {
		if pos := ix.upsertAccount(AccountRow{ID: uint64(i) + 1, Plan: "pro", Status: AccountActive, Credits: int64(i)}); pos != uint32(i) {
			t.Fatalf("account %d got position %d", i, pos)
		}
	}
	if !ix.accounts.mapped {
		t.Log("account records are on the Go heap (no mmap here)")
	}
	for i, a := range ix.accounts.s {
		if a.id != uint64(i)+1 || a.credits != int64(i) || a.parent != noParent {
			t.Fatalf("account %d after growing: %+v", i, a)
		}
	}
	if _, accounts := ix.Counts(); accounts != n {
		t.Fatalf("index holds %d accounts, want %d", accounts, n)
	}
}

func TestCommonTextIsStoredOnce(t *testing.T) {
	ix, _ := testIndex(t, 1000)
	defer ix.Release()
	// 1000 hints of 4 bytes, each name and the "*" scope once.
	if n := len(ix.text.s); n > 1000*4+100 {
		t.Fatalf("arena holds %d bytes", n)
	}
	if len(ix.common) > 10 {
		t.Fatalf("%d shared texts: hints should not be shared", len(ix.common))
	}
}

func BenchmarkIndexLookup(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		ix, hashes := testIndex(b, n)
		b.Run(fmt.Sprintf("keys=%d/known", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := ix.Lookup(&hashes[i]); !ok {
					b.Fatal("not found")
				}
				i = (i + 7919) % len(hashes)
			}
		})
		b.Run(fmt.Sprintf("keys=%d/unknown", n), func(b *testing.B) {
			b.ReportAllocs()
			var h [32]byte
			i := uint64(0)
			for b.Loop() {
				binary.LittleEndian.PutUint64(h[:], i*0x9E3779B97F4A7C15)
				if _, ok := ix.Lookup(&h); ok {
					b.Fatal("found")
				}
				i++
			}
		})
		ix.Release()
	}
}

// TestKeyRecordSize keeps a key's record at one cache line: ten million
// keys are ten million of them, and validation reads one at random.
func TestKeyRecordSize(t *testing.T) {
	if size := unsafe.Sizeof(keyRecord{}); size != 64 {
		t.Errorf("keyRecord is %d bytes, want 64", size)
	}
	if size := unsafe.Sizeof(Activity{}); size != 32 {
		t.Errorf("Activity is %d bytes, want 32", size)
	}
}

// A sparse array keeps what was written when it grows (the copy skips only
// pages that hold nothing), and elements it extends by are zero.
func TestSparseArrayGrowsKeepingWhatWasWritten(t *testing.T) {
	a := makeSparseArray[Activity](0, 0)
	defer a.release()
	written := map[int]uint32{}
	for round := range 4 {
		n := (bigArrayMin / 32) << round // mapped from the first round on
		a.reserve(n - len(a.s))
		a.extend(n - len(a.s))
		if !a.mapped {
			t.Fatalf("round %d: an array of %d records is not mapped", round, n)
		}
		for _, i := range []int{0, n / 3, n/2 + 1, n - 1} {
			a.s[i].lastUsed = uint32(1000*round + i%1000 + 1)
			written[i] = a.s[i].lastUsed
		}
		for i := range a.s {
			if want := written[i]; a.s[i].lastUsed != want || (want == 0 && a.s[i] != (Activity{})) {
				t.Fatalf("round %d: element %d is %+v, want lastUsed %d", round, i, a.s[i], want)
			}
		}
	}
}

// The account table finds every account as it grows, by random and by
// consecutive ids, and finds no other.
func TestAccountTableFindsEveryAccount(t *testing.T) {
	for _, ids := range []func(i int) uint64{
		func(i int) uint64 { return uint64(i) + 1 },
		func(i int) uint64 { return uint64(i+1) * 0xD6E8FEB86659FD93 },
	} {
		table := newAccountTable()
		var accounts []accountRecord
		for i := range 100_000 {
			accounts = append(accounts, accountRecord{id: ids(i)})
			table.insert(accounts)
		}
		for i := range accounts {
			if pos, ok := table.find(accounts, ids(i)); !ok || pos != uint32(i) {
				t.Fatalf("account %d found at %d (%v)", i, pos, ok)
			}
		}
		if _, ok := table.find(accounts, ids(len(accounts))); ok {
			t.Error("an account not in the table was found")
		}
		used := 0
		for _, s := range table.slots.s {
			if s != 0 {
				used++
			}
		}
		if used != len(accounts) {
			t.Errorf("%d slots used for %d accounts", used, len(accounts))
		}
		table.release()
	}
}

// Loading the whole index at start-up, from the database or from a
// snapshot, leaves an eighth to spare, so that the keys added after a start
// do not move every record at once.
func TestLoadLeavesRoomForNewKeys(t *testing.T) {
	const n = 40_000
	loaded, _ := testIndex(t, n) // reserves n, then adds them
	defer loaded.Release()
	var file bytes.Buffer
	var snap Snapshot
	if err := loaded.WriteSnapshot(&file, func(_ int, s Snapshot) error { snap = s; return nil }); err != nil {
		t.Fatal(err)
	}
	read, err := ReadSnapshot(&file, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Release()
	for name, ix := range map[string]*Index{"loaded": loaded, "read from a snapshot": read} {
		if c := cap(ix.keys.s); c < n+n/8 {
			t.Errorf("%s: capacity for %d records, want at least %d", name, c, n+n/8)
		}
		if c := cap(ix.acts.s); c < n+n/8 {
			t.Errorf("%s: capacity for %d activity records, want at least %d", name, c, n+n/8)
		}
	}
}
