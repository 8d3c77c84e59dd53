// Package storetest gives tests the database they run on: a new SQLite file
// by default, or a new database on a private PostgreSQL server when the
// tests are built with the tag postgres (make test-postgres), so that the
// same tests check both engines.
//
// A package whose tests use DSN calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
package storetest

import "strings"

// SecretKey is the secret key a test opens the store at dsn with: a fixed
// one for a PostgreSQL database, which has no file beside it to keep one
// in; nil for a SQLite file, beside which the store makes its key file.
func SecretKey(dsn string) []byte {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return []byte("keyd-test-secret-key-32-bytes...")
	}
	return nil
}
