package store

import (
	"crypto/rand"
	"encoding/binary"

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

// ID prefixes of the public, opaque identifiers; those of keys and
// accounts are the index's.
const (
	prefixAccount = keyindex.PrefixAccount
	prefixKey     = keyindex.PrefixKey
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

func formatID(prefix string, n uint64) string { return keyindex.FormatID(prefix, n) }

func parseID(prefix, s string) (uint64, error) { return keyindex.ParseID(prefix, s) }
