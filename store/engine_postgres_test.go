//go:build postgres

package store

import "keyd/store/postgres"

// The PostgreSQL engine provides all the store needs of an engine (checked
// when the PostgreSQL tests are built; keyd does not select it yet).
var _ engine = postgres.Engine{}
