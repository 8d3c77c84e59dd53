//go:build !postgres

package storetest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Engine names the engine the tests run on.
const Engine = "sqlite"

// DSN is a new, empty database for t: a file in t's temporary folder.
func DSN(t testing.TB) string { return filepath.Join(t.TempDir(), "keyd.db") }

// Main runs the package's tests.
func Main(m *testing.M) { os.Exit(m.Run()) }

// Copy is a new database for t holding what the closed database at dsn
// holds: a copy of its file, its write-ahead log and the secret key file
// beside it (which seals webhook secrets).
func Copy(t testing.TB, dsn string) string {
	t.Helper()
	dst := DSN(t)
	for _, suffix := range []string{"", "-wal", ".key"} {
		b, err := os.ReadFile(dsn + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
