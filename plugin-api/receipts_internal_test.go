package pluginapi

import (
	"fmt"
	"testing"
)

// A full receipt cache drops what is no longer reused and then an eighth of
// the rest, so that most receipts stay reusable when more keys ask for
// receipts than it holds.
func TestReceiptCacheSweepKeepsMost(t *testing.T) {
	r := newReceipts(nil, 0, nil)
	const now = 1_000
	for i := range maxCachedReceipts {
		reuseUntil := int64(now + 3600)
		if i%4 == 0 {
			reuseUntil = now // no longer reused
		}
		r.cache[receiptCacheKey{keyID: fmt.Sprint(i)}] = cachedReceipt{token: "t", reuseUntil: reuseUntil}
	}
	r.sweep(now)
	if got, want := len(r.cache), maxCachedReceipts*3/4; got != want {
		t.Fatalf("after dropping the stale quarter: %d cached, want %d", got, want)
	}
	for k, c := range r.cache {
		if c.reuseUntil <= now {
			t.Fatalf("a stale receipt stayed: %v", k)
		}
	}
	for i := range maxCachedReceipts / 4 {
		r.cache[receiptCacheKey{keyID: fmt.Sprint("new", i)}] = cachedReceipt{token: "t", reuseUntil: now + 3600}
	}
	r.sweep(now)
	if got, want := len(r.cache), maxCachedReceipts-maxCachedReceipts/8-1; got != want {
		t.Fatalf("a full cache of fresh receipts kept %d, want %d", got, want)
	}
}
