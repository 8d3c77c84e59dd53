package keyindex

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
)

// ID prefixes of keys and accounts: an id is a prefix and 16 hex digits, the
// number the index keeps.
const (
	PrefixAccount = "acc_"
	PrefixKey     = "key_"
)

// idLength is the length of an id: a 4-character prefix and 16 hex digits.
const idLength = 4 + 16

// FormatID is the id made of prefix and n.
func FormatID(prefix string, n uint64) string {
	var b [24]byte
	return string(appendID(b[:0], prefix, n))
}

// appendID appends the id made of prefix and n to b.
func appendID(b []byte, prefix string, n uint64) []byte {
	b = append(b, prefix...)
	return hex.AppendEncode(b, binary.BigEndian.AppendUint64(nil, n))
}

var errBadID = errors.New("malformed id")

// ParseID is the number in the id s with this prefix.
func ParseID(prefix, s string) (uint64, error) {
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
