package store

import (
	"encoding/hex"
	"strings"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }
func hexString(b []byte) string   { return hex.EncodeToString(b) }
