//go:build !postgres

package storetest

import (
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
