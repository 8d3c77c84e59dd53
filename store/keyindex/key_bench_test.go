package keyindex

import "testing"

func BenchmarkHashKey(b *testing.B) {
	key := NewKey()
	b.ReportAllocs()
	for b.Loop() {
		HashKey(key)
	}
}

func BenchmarkWellFormedKey(b *testing.B) {
	key := NewKey()
	for b.Loop() {
		if !WellFormedKey(key) {
			b.Fatal("not well formed")
		}
	}
}
