//go:build !unix

package keyindex

import "unsafe"

// Without mmap the index's arrays stay on the Go heap.
func mapMemory(int, bool) unsafe.Pointer { return nil }

func unmapMemory(unsafe.Pointer, int) {}
