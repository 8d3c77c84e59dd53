package keyindex

import (
	"bytes"
	"reflect"
	"unsafe"
)

// The index's large arrays (key and account records, the slot table, the
// text arena) hold no pointers and live as long as the process. Kept on the
// Go heap they would count towards the garbage collector's heap goal, which
// lets the heap grow to about twice their size before each collection: with
// a million keys that alone is some 120 MB of resident memory that holds
// nothing. So arrays above bigArrayMin are mapped from the operating system
// instead (see bigarray_unix.go), where the collector neither scans nor
// counts them.
//
// Rule that makes this safe: memory of these arrays is only read or written
// with Index.mu held, and nothing that points into it (a slice, a string made
// with unsafe, a pointer to a record) is kept after the lock is released.
// Everything handed out is copied; the activity records alone are lent,
// under the read lock and only until it is released (see
// Index.ReadActivities). An array is unmapped only under the write
// lock, after its contents were copied to its replacement.
const bigArrayMin = 1 << 20 // bytes

// bigArray is a growable array of pointer-free T.
type bigArray[T any] struct {
	s      []T
	mapped bool // s is mapped memory, to be unmapped when replaced
	sparse bool // see makeSparseArray
}

// makeBigArray returns an array of length n and capacity at least capacity.
func makeBigArray[T any](n, capacity int) bigArray[T] { return makeArray[T](n, capacity, false) }

// makeSparseArray is makeBigArray for an array most of whose elements stay
// zero for good, such as what validations recorded of each key (most keys
// are not used between two flushes). Its memory gets no huge pages and
// growing it copies only the pages that hold something, so a page becomes
// resident only once an element on it is written: at ten million keys the
// 32-byte records of the few thousand keys in use take a few megabytes, not
// 320. Elements past the length are zero, so extend adds them without
// writing.
func makeSparseArray[T any](n, capacity int) bigArray[T] { return makeArray[T](n, capacity, true) }

func makeArray[T any](n, capacity int, sparse bool) bigArray[T] {
	capacity = max(n, capacity)
	var zero T
	if bytes := int(unsafe.Sizeof(zero)) * capacity; bytes >= bigArrayMin {
		if hasPointers(reflect.TypeFor[T]()) {
			panic("keyindex: bigArray of a type with pointers")
		}
		if p := mapMemory(bytes, !sparse); p != nil {
			return bigArray[T]{s: unsafe.Slice((*T)(p), capacity)[:n], mapped: true, sparse: sparse}
		}
	}
	return bigArray[T]{s: make([]T, n, capacity), sparse: sparse}
}

// reserve makes room for at least extra more elements, doubling the
// capacity so that appends stay cheap. A reservation larger than that (the
// whole index, at start-up) gets an eighth to spare, so that the first
// keys added after a start do not move every record at once (640 MB at ten
// million keys, under the write lock); room never written costs no memory.
func (a *bigArray[T]) reserve(extra int) {
	need := len(a.s) + extra
	if need <= cap(a.s) {
		return
	}
	grown := makeArray[T](len(a.s), spareCapacity(need, cap(a.s)), a.sparse)
	if a.sparse {
		copyWritten(bytesOf(grown.s), bytesOf(a.s))
	} else {
		copy(grown.s, a.s)
	}
	a.release()
	*a = grown
}

// spareCapacity is the capacity reserve gives an array of capacity had that
// needs room for need.
func spareCapacity(need, had int) int { return max(need+need/8, 2*had, 64) }

// extend lengthens the array by n zero elements, within its capacity (see
// reserve), without writing them: elements past the length were never
// written, and mapped or allocated memory starts zeroed.
func (a *bigArray[T]) extend(n int) { a.s = a.s[:len(a.s)+n] }

// bytesOf is the memory of s, for copying and for snapshots.
func bytesOf[T any](s []T) []byte {
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}

// copyWritten copies src into dst (at least as long) a page at a time,
// skipping pages of src that hold only zeros: dst is fresh zeroed memory,
// and reading a page that was never written does not make it resident.
func copyWritten(dst, src []byte) {
	var zeroPage [4096]byte
	for off := 0; off < len(src); off += len(zeroPage) {
		page := src[off:min(off+len(zeroPage), len(src))]
		if !bytes.Equal(page, zeroPage[:len(page)]) {
			copy(dst[off:], page)
		}
	}
}

// release unmaps the array's memory if it was mapped and empties it.
func (a *bigArray[T]) release() {
	if a.mapped && cap(a.s) > 0 {
		var zero T
		unmapMemory(unsafe.Pointer(unsafe.SliceData(a.s)), int(unsafe.Sizeof(zero))*cap(a.s))
	}
	*a = bigArray[T]{}
}

// hasPointers reports whether values of t contain pointers the garbage
// collector would need to see.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}
