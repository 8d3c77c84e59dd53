// Package keyindex is keyd's in-memory key index: every key and account in
// fixed records, found by a key's SHA-256, together with the key format and
// the rule that decides a key's status. It imports no database code, so that
// validation, which reads only the index, cannot touch the database; the
// store fills it from committed database state.
package keyindex

import (
	"crypto/rand"
	"crypto/sha256"
)

// KeyLength is the length of every API key.
const KeyLength = 20

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewKey returns a key of KeyLength characters drawn uniformly from
// [A-Za-z0-9]. Bytes of 248 and above are dropped rather than reduced modulo
// 62, so no character is more likely than another.
func NewKey() string {
	const limit = 256 - 256%len(keyAlphabet) // 248
	out := make([]byte, 0, KeyLength)
	var buf [32]byte
	for len(out) < KeyLength {
		rand.Read(buf[:]) // never fails (crypto/rand panics on broken systems)
		for _, b := range buf {
			if int(b) < limit && len(out) < KeyLength {
				out = append(out, keyAlphabet[int(b)%len(keyAlphabet)])
			}
		}
	}
	return string(out)
}

// WellFormedKey reports whether s has the shape of a key: exactly KeyLength
// ASCII letters and digits.
func WellFormedKey(s string) bool {
	if len(s) != KeyLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// HashKey is the SHA-256 of a key: the only form in which keys are stored.
func HashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// KeyHint is the part of a key that may be shown again: its last 4 characters.
func KeyHint(key string) string { return key[len(key)-4:] }
