package keyindex

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestNewKeyShape(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := NewKey()
		if len(k) != KeyLength {
			t.Fatalf("NewKey() = %q: length %d, want %d", k, len(k), KeyLength)
		}
		for _, c := range k {
			if !strings.ContainsRune(keyAlphabet, c) {
				t.Fatalf("NewKey() = %q holds %q, outside [A-Za-z0-9]", k, c)
			}
		}
		if !WellFormedKey(k) {
			t.Fatalf("WellFormedKey(NewKey() = %q) = false", k)
		}
		if seen[k] {
			t.Fatalf("NewKey() returned %q twice", k)
		}
		seen[k] = true
	}
}

// TestNewKeyUniform checks that every character is about as frequent as every
// other. A key reduced modulo 62 from a random byte would make the first 8
// characters of the alphabet 25% more frequent than the rest; the bound of 5%
// around the mean is more than 12 standard deviations wide for 4 million
// characters, so a correct generator never fails it.
func TestNewKeyUniform(t *testing.T) {
	const keys = 200_000
	var counts [256]int
	for i := 0; i < keys; i++ {
		k := NewKey()
		for j := 0; j < len(k); j++ {
			counts[k[j]]++
		}
	}
	mean := float64(keys*KeyLength) / float64(len(keyAlphabet))
	total := 0
	for i := 0; i < len(keyAlphabet); i++ {
		c := keyAlphabet[i]
		n := counts[c]
		total += n
		if dev := (float64(n) - mean) / mean; dev > 0.05 || dev < -0.05 {
			t.Errorf("character %q appeared %d times, %.1f%% off the mean %.0f", c, n, dev*100, mean)
		}
	}
	if total != keys*KeyLength {
		t.Errorf("%d characters outside the alphabet", keys*KeyLength-total)
	}
}

func TestWellFormedKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"abcdefghijABCDEFGHIJ", true},
		{"01234567890123456789", true},
		{"Zz09Zz09Zz09Zz09Zz09", true},
		{"", false},
		{"abcdefghijABCDEFGHI", false},   // 19
		{"abcdefghijABCDEFGHIJK", false}, // 21
		{"abcdefghij-BCDEFGHIJ", false},
		{"abcdefghij_BCDEFGHIJ", false},
		{"abcdefghij BCDEFGHIJ", false},
		{" abcdefghijABCDEFGHI", false},
		{"abcdefghijABCDEFGHI\n", false},
		{"abcdefghijABCDEFGHI\x00", false},
		{"abcdefghijABCDEFGé", false}, // 20 bytes, 19 characters
		{"abcdefghijABCDEFGHIé", false},
		{"ａbcdefghijABCDEFGHIJ", false}, // full-width a
		{"abcdefghij+BCDEFGHI=", false},
		{"abcdefghij/BCDEFGHIJ", false},
	}
	for _, tt := range tests {
		if got := WellFormedKey(tt.key); got != tt.want {
			t.Errorf("WellFormedKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestHashAndHint(t *testing.T) {
	k := "abcdefghijABCDEFwxyz"
	if got, want := HashKey(k), sha256.Sum256([]byte(k)); got != want {
		t.Errorf("HashKey = %x, want SHA-256 %x", got, want)
	}
	if got := KeyHint(k); got != "wxyz" {
		t.Errorf("KeyHint = %q, want the last 4 characters %q", got, "wxyz")
	}
}
