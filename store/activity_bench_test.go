package store

import (
	"testing"
	"time"
)

// BenchmarkRecordValidation records validations of 100,000 different keys,
// each reporting its usual site, as a busy keyd sees them.
func BenchmarkRecordValidation(b *testing.B) {
	ix, _ := testIndex(b, 100_000)
	defer ix.release()
	db := &DB{index: ix, activity: newActivity()}
	report := SiteReport{Site: "https://shop.example.com/", Plugin: "shop", PluginVersion: "1.2.3", WPVersion: "6.8.1"}
	now := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		db.RecordValidation(KeyView{pos: i * 7919 % 100_000}, true, report, now)
		i++
	}
}
