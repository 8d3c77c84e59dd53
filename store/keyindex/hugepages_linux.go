package keyindex

import "syscall"

// adviseHugePages asks for huge pages behind a mapped array. Every
// validation reads a random record of the index's arrays; with 4 KiB pages a
// million keys span tens of thousands of pages and nearly every lookup also
// misses the TLB, while huge pages (where transparent huge pages are set to
// "madvise" or "always") cut that to a few dozen. It is only advice:
// without huge pages everything works the same.
//
// Without huge it asks for none, for arrays that are mostly never written
// (see makeSparseArray): where huge pages are "always", writing one element
// would make two megabytes around it resident.
func adviseHugePages(b []byte, huge bool) {
	if huge {
		syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	} else {
		syscall.Madvise(b, syscall.MADV_NOHUGEPAGE)
	}
}
