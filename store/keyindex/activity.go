package keyindex

import "sync/atomic"

// Activity is what validations of one key saw (the counters: since the
// last flush), kept in the index beside the key's record (Index.acts), so
// that recording a validation touches only memory it has just read.
// Validations change it with atomic operations under the index's read lock
// (see ReadActivities); moving the array needs the write lock, so nothing is
// lost when it moves. The store's activity aggregator decides what the
// records mean and flushes them.
//
// Times are unix seconds in 32 bits (enough until 2106): 32 bytes.
type Activity struct {
	counts   uint64 // the day's validations and failures: see packCounts
	report   uint64 // hash of the last site report recorded
	reportAt uint32 // and when
	lastUsed uint32 // the last accepted validation recorded; 0 = none
	// lastUsedFlushed is the lastUsed last handed to a flush (see
	// TakeLastUsed).
	lastUsedFlushed uint32
	listed          uint32 // 1 while the key is on the aggregator's list (see List)
}

// A key's counters and the day they are for share one word, changed only by
// compare-and-swap, so each validation is counted for exactly its own day even
// when the day changes under it: day (22 bits), validations and failures
// (21 bits each). A full counter is taken (see Take) before counting more.
const (
	countBits = 21
	countMax  = 1<<countBits - 1
)

func packCounts(day int32, validations, failed uint64) uint64 {
	return uint64(day)<<(2*countBits) | validations<<countBits | failed
}

func unpackCounts(w uint64) (day int32, c Counts) {
	return int32(w >> (2 * countBits)), Counts{Validations: int64(w >> countBits & countMax), Failed: int64(w & countMax)}
}

// Counts are a key's validations and failures on a day.
type Counts struct{ Validations, Failed int64 }

// Activities are the activity records, by key position, for as long as the
// index's read lock is held (see Index.Activities).
type Activities struct{ s []Activity }

// At is the record of the key at pos; nil when there is none (the index was
// released).
func (a Activities) At(pos uint32) *Activity {
	if int(pos) >= len(a.s) {
		return nil
	}
	return &a.s[pos]
}

// ReadActivities takes the index's read lock and returns the activity
// records, until DoneActivities releases it: callers defer that. Like
// everything in mapped memory (see bigArray), the records must not be kept
// after the lock is released. (A pair rather than a function taking a
// callback: recording a validation runs this on every request, and through
// a callback it took a sixth longer.)
func (ix *Index) ReadActivities() Activities {
	ix.mu.RLock()
	return Activities{ix.acts.s}
}

// DoneActivities releases the read lock ReadActivities took.
func (ix *Index) DoneActivities() { ix.mu.RUnlock() }

// LastUsed is the position of the key with this hash and the last use its
// record holds (0 = none).
func (ix *Index) LastUsed(hash *[32]byte) (pos uint32, sec int64, found bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if pos, found = ix.find(hash); found {
		sec = int64(atomic.LoadUint32(&ix.acts.s[pos].lastUsed))
	}
	return pos, sec, found
}

// Count counts a validation (a failure unless ok) on day, unless the record
// holds another day's counters or a full counter: then it returns false and
// the caller takes them (Take) and counts again.
func (act *Activity) Count(day int32, ok bool) bool {
	add := uint64(1) << countBits
	if !ok {
		add++
	}
	for {
		old := atomic.LoadUint64(&act.counts)
		if d, c := unpackCounts(old); d != day || c.Validations == countMax || c.Failed == countMax {
			return false
		}
		if atomic.CompareAndSwapUint64(&act.counts, old, old+add) {
			return true
		}
	}
}

// Day is the day the counters are for.
func (act *Activity) Day() int32 {
	day, _ := unpackCounts(atomic.LoadUint64(&act.counts))
	return day
}

// Take returns the counters and the day they were for, and starts them
// afresh for day.
func (act *Activity) Take(day int32) (int32, Counts) {
	for {
		old := atomic.LoadUint64(&act.counts)
		if atomic.CompareAndSwapUint64(&act.counts, old, packCounts(day, 0, 0)) {
			return unpackCounts(old)
		}
	}
}

// SetLastUsed records the key's last use.
func (act *Activity) SetLastUsed(sec int64) { atomic.StoreUint32(&act.lastUsed, uint32(sec)) }

// TakeLastUsed returns the last use recorded to be flushed, when force or
// when it is at least staleAfter seconds newer than the one last taken: in
// memory it is exact, in the database kept to staleAfter.
func (act *Activity) TakeLastUsed(force bool, staleAfter int64) (int64, bool) {
	used := atomic.LoadUint32(&act.lastUsed)
	if !force && int64(used)-int64(atomic.LoadUint32(&act.lastUsedFlushed)) < staleAfter {
		return 0, false
	}
	atomic.StoreUint32(&act.lastUsedFlushed, used)
	return int64(used), true
}

// List reports whether the key is to be put on the aggregator's list: true
// once until Unlist.
func (act *Activity) List() bool { return atomic.CompareAndSwapUint32(&act.listed, 0, 1) }

// Unlist takes the key off the list: a later List is true again.
func (act *Activity) Unlist() { atomic.StoreUint32(&act.listed, 0) }

// RecentReport reports whether the last site report recorded has this hash
// and is less than within seconds older than sec.
func (act *Activity) RecentReport(hash uint64, sec, within int64) bool {
	return atomic.LoadUint64(&act.report) == hash && sec-int64(atomic.LoadUint32(&act.reportAt)) < within
}

// SetReport records the hash of the site report recorded at sec.
func (act *Activity) SetReport(hash uint64, sec int64) {
	atomic.StoreUint64(&act.report, hash)
	atomic.StoreUint32(&act.reportAt, uint32(sec))
}
