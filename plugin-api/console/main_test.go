package console_test

import (
	"bytes"
	"testing"

	"keyd/store"
	"keyd/store/storetest"
)

// The tests run on SQLite, or with the tag postgres on a private PostgreSQL
// server (make test-postgres).
func TestMain(m *testing.M) { storetest.Main(m) }

// storeOptions are opts for a test's store at dsn: on PostgreSQL, which has
// no key file beside the database, a fixed secret key first (opts may give
// another).
func storeOptions(dsn string, opts ...store.Option) []store.Option {
	if store.IsPostgresURL(dsn) {
		return append([]store.Option{store.WithSecretKey(bytes.Repeat([]byte{0x6b}, store.SecretKeySize))}, opts...)
	}
	return opts
}
