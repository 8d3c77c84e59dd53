package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"keyd/store/storetest"
)

// fakeClock is a clock tests move by hand. It is safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// t0 is the fake clock's starting time: a whole second, so expectations on
// stored unix seconds are exact.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// mustOpenDB opens a new database file in a temporary directory and closes it
// when the test ends.
func mustOpenDB(tb testing.TB, opts ...Option) *DB {
	tb.Helper()
	return mustOpenDBAt(tb, storetest.DSN(tb), opts...)
}

// testOptions are opts for a test's database at dsn: on PostgreSQL, which
// has no key file beside the database, a secret key first (opts may give
// another).
func testOptions(dsn string, opts []Option) []Option {
	if key := storetest.SecretKey(dsn); key != nil {
		return append([]Option{WithSecretKey(key)}, opts...)
	}
	return opts
}

// mustOpenDBAt opens (or reopens) the database at path.
func mustOpenDBAt(tb testing.TB, path string, opts ...Option) *DB {
	tb.Helper()
	db, err := Open(context.Background(), path, testOptions(path, opts)...)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// queryInt runs a query answering one integer.
func queryInt(tb testing.TB, db *DB, query string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := db.r.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// mustCreate creates an account on plan with credits, as the operator.
func mustCreate(tb testing.TB, db *DB, name, plan string, credits int64) Created {
	tb.Helper()
	c, err := db.CreateAccount(context.Background(), OperatorActor("127.0.0.1"),
		NewAccount{Name: name, Email: name + "@example.com", Plan: plan, Credits: credits})
	if err != nil {
		tb.Fatalf("create account %s: %v", name, err)
	}
	return c
}

// mustLookup finds a plaintext key in the index.
func mustLookup(tb testing.TB, db *DB, secret string) KeyView {
	tb.Helper()
	v, ok := db.LookupKey(HashKey(secret))
	if !ok {
		tb.Fatalf("key ...%s is not in the index", KeyHint(secret))
	}
	return v
}

func ptr[T any](v T) *T { return &v }
