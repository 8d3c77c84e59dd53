package store

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"keyd/store/keyindex"
)

// BenchmarkRecordValidation records validations of 100,000 different keys,
// each reporting its usual site, as a busy keyd sees them.
func BenchmarkRecordValidation(b *testing.B) {
	const n = 100_000
	ix := keyindex.New()
	defer ix.Release()
	ix.Apply([]keyindex.Plan{{Name: "pro"}}, nil)
	ix.Reserve(n)
	for i := range n {
		// Five keys to an account, as keyd seed makes them.
		id := uint64(i/5) + 1
		ix.AddAccount(keyindex.AccountRow{ID: id, Plan: "pro", Status: AccountActive})
		acc, _ := ix.AccountPos(id)
		var k [8]byte
		binary.LittleEndian.PutUint64(k[:], uint64(i))
		ix.AddKey(&keyindex.KeyRow{Hash: sha256.Sum256(k[:]), ID: uint64(i) + 1, Alias: i%5 != 0, Status: KeyActive,
			Name: primaryKeyName, Hint: "0000", Scopes: "*"}, acc)
	}
	db := &DB{index: ix, activity: newActivity()}
	report := SiteReport{Site: "https://shop.example.com/", Plugin: "shop", PluginVersion: "1.2.3", WPVersion: "6.8.1"}
	now := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		db.RecordValidation(KeyView{pos: i * 7919 % n}, true, report, now)
		i++
	}
}
