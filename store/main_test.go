package store

import (
	"testing"

	"keyd/store/storetest"
)

// The tests run on SQLite, or with the tag postgres on a private PostgreSQL
// server (make test-postgres).
func TestMain(m *testing.M) { storetest.Main(m) }
