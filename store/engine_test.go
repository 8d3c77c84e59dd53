package store

import (
	"strings"
	"testing"
)

// A PostgreSQL URL is shown without its password.
func TestRedactedDSNHidesThePassword(t *testing.T) {
	for dsn, want := range map[string]string{
		"./keyd.db": "./keyd.db",
		"postgres://keyd:s3cret@db.internal:5432/keyd?sslmode=verify-full": "postgres://keyd:xxxxx@db.internal:5432/keyd?sslmode=verify-full",
		"postgresql://keyd@db/keyd":                                        "postgresql://keyd@db/keyd",
	} {
		if got := RedactedDSN(dsn); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("RedactedDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}
