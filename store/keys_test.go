package store

import (
	"strings"
	"testing"
)

func TestIDs(t *testing.T) {
	id, n := newID(prefixAccount)
	if !strings.HasPrefix(id, "acc_") || len(id) != len("acc_")+16 {
		t.Fatalf("newID = %q, want acc_ and 16 hex digits", id)
	}
	got, err := parseID(prefixAccount, id)
	if err != nil || got != n {
		t.Fatalf("parseID(%q) = %d, %v; want %d", id, got, err, n)
	}
	for _, bad := range []string{"", "acc_", "key_0123456789abcdef", "acc_0123456789abcdeg", "acc_0123456789abcdef0", "acc_0123456789abcde"} {
		if _, err := parseID(prefixAccount, bad); err == nil {
			t.Errorf("parseID(%q) accepted a malformed id", bad)
		}
	}
}
