package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
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

// ID prefixes of the public, opaque identifiers.
const (
	prefixAccount = "acc_"
	prefixKey     = "key_"
	prefixEvent   = "evt_"
)

// newID returns a random identifier: prefix plus 16 hex digits. The numeric
// part is what the in-memory index keeps.
func newID(prefix string) (string, uint64) {
	var b [8]byte
	rand.Read(b[:])
	n := binary.BigEndian.Uint64(b[:])
	return formatID(prefix, n), n
}

func formatID(prefix string, n uint64) string {
	var b [24]byte
	return string(appendID(b[:0], prefix, n))
}

// appendID appends the id made of prefix and n to b.
func appendID(b []byte, prefix string, n uint64) []byte {
	b = append(b, prefix...)
	return hex.AppendEncode(b, binary.BigEndian.AppendUint64(nil, n))
}

var errBadID = errors.New("malformed id")

func parseID(prefix, s string) (uint64, error) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 16 {
		return 0, errBadID
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(rest)); err != nil {
		return 0, errBadID
	}
	return binary.BigEndian.Uint64(b[:]), nil
}
