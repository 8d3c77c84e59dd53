package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"

	"keyd/store/keyindex"
)

// The key format is the index's (see package keyindex).
const KeyLength = keyindex.KeyLength

// NewKey returns a new random key (see keyindex.NewKey).
func NewKey() string { return keyindex.NewKey() }

// WellFormedKey reports whether s has the shape of a key (see
// keyindex.WellFormedKey).
func WellFormedKey(s string) bool { return keyindex.WellFormedKey(s) }

// HashKey is the SHA-256 of a key: the only form in which keys are stored.
func HashKey(key string) [32]byte { return keyindex.HashKey(key) }

// KeyHint is the part of a key that may be shown again: its last 4 characters.
func KeyHint(key string) string { return keyindex.KeyHint(key) }

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
