//go:build postgres

package storetest

import (
	"testing"

	"keyd/store/postgres/pgtest"
)

// Engine names the engine the tests run on.
const Engine = "postgres"

// DSN is a new, empty database for t on the test binary's PostgreSQL server,
// dropped when t ends.
func DSN(t testing.TB) string { return pgtest.Database(t) }

// Main starts the PostgreSQL server, runs the package's tests and stops it.
func Main(m *testing.M) { pgtest.Main(m) }

// Copy is a new database for t on the same server holding what the database
// at dsn holds; no one may be connected to that one. It is dropped when t
// ends.
func Copy(t testing.TB, dsn string) string { return pgtest.Copy(t, dsn) }
