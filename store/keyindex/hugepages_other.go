//go:build unix && !linux

package keyindex

// adviseHugePages does nothing where there is no MADV_HUGEPAGE.
func adviseHugePages([]byte, bool) {}
