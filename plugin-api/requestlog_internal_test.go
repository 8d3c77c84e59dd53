package pluginapi

import (
	"testing"
	"time"
)

// Each duration falls in the bucket whose range holds it, so percentiles
// read from the buckets are never below the durations they stand for.
func TestDurationBuckets(t *testing.T) {
	for micro := uint64(0); micro < 1<<20; micro += 1 + micro/64 {
		i := durationBucket(micro)
		d := time.Duration(micro) * time.Microsecond
		if d > bucketUpper(i) || (i > 0 && d <= bucketUpper(i-1)) {
			t.Fatalf("%v is in bucket %d, which holds (%v, %v]", d, i, bucketUpper(i-1), bucketUpper(i))
		}
		if up := bucketUpper(i); i >= 4 && float64(up) > 1.25*float64(d)+float64(time.Microsecond) {
			t.Fatalf("bucket %d of %v reaches %v, more than a quarter above", i, d, up)
		}
	}
	if i := durationBucket(1 << 62); i != durationBuckets-1 {
		t.Errorf("a huge duration is in bucket %d, want the last", i)
	}
}
