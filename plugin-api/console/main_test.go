package console_test

import (
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
	if key := storetest.SecretKey(dsn); key != nil {
		return append([]store.Option{store.WithSecretKey(key)}, opts...)
	}
	return opts
}
