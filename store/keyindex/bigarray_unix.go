//go:build unix

package keyindex

import (
	"syscall"
	"unsafe"
)

// mapMemory maps n bytes of zeroed, private memory, or returns nil. With
// huge it asks for huge pages, otherwise it asks for none.
func mapMemory(n int, huge bool) unsafe.Pointer {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil // the caller falls back to the Go heap
	}
	adviseHugePages(b, huge)
	return unsafe.Pointer(unsafe.SliceData(b))
}

func unmapMemory(p unsafe.Pointer, n int) {
	syscall.Munmap(unsafe.Slice((*byte)(p), n))
}
