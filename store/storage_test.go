package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mattn/go-sqlite3"

	"keyd/store/sqlite"
)

func TestStorageErrorClassifiesSQLiteCodes(t *testing.T) {
	db := &DB{eng: sqlite.Engine{}}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{sqlite3.Error{Code: sqlite3.ErrFull}, true},
		{sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrWrite}, true},
		{sqlite3.Error{Code: sqlite3.ErrIoErr, ExtendedCode: sqlite3.ErrIoErrFsync}, true},
		{sqlite3.Error{Code: sqlite3.ErrReadonly}, true},
		{sqlite3.Error{Code: sqlite3.ErrCantOpen}, true},
		{fmt.Errorf("store: commit: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true},
		{sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintUnique}, false},
		{sqlite3.Error{Code: sqlite3.ErrBusy}, false},
		{ErrNotFound, false},
		{nil, false},
	} {
		got := db.storageError(tc.err)
		if errors.Is(got, ErrStorageUnavailable) != tc.want {
			t.Errorf("storageError(%v) = %v, want storage unavailable %v", tc.err, got, tc.want)
		}
		if tc.err != nil && !errors.Is(got, tc.err) {
			t.Errorf("storageError(%v) = %v lost the cause", tc.err, got)
		}
	}
}

// TestWritesFailCleanlyOnReadOnlyDatabase makes the one writer connection
// read-only (SQLite then answers SQLITE_READONLY, as for a file it may not
// write) and checks that every kind of write says ErrStorageUnavailable,
// changes nothing, keeps the index answering, and works again as soon as the
// database is writable: the writer connection is not left in a transaction.
func TestWritesFailCleanlyOnReadOnlyDatabase(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDBAt(t, filepath.Join(t.TempDir(), "keyd.db")) // SQLite's read-only mode, whichever engine the tests run on
	acc := mustCreate(t, db, "ro", "pro", 100)
	owner := Actor{Type: ActorPrimary, KeyID: acc.Key.ID, IP: "127.0.0.1"}
	primary := mustLookup(t, db, acc.Secret)

	setReadOnly := func(on bool) {
		t.Helper()
		v := 0
		if on {
			v = 1
		}
		if _, err := db.w.ExecContext(ctx, fmt.Sprintf("PRAGMA query_only = %d", v)); err != nil {
			t.Fatal(err)
		}
	}
	setReadOnly(true)

	_, err := db.CreateAlias(ctx, owner, acc.Account.ID, NewAlias{Name: "site"})
	if !errors.Is(err, ErrStorageUnavailable) {
		t.Fatalf("create alias on a read-only database: %v", err)
	}
	var se sqlite3.Error
	if !errors.As(err, &se) || se.Code != sqlite3.ErrReadonly {
		t.Fatalf("the cause is not kept: %v", err)
	}
	if _, err := db.Spend(ctx, &primary, 5, "order-1"); !errors.Is(err, ErrStorageUnavailable) {
		t.Fatalf("spend on a read-only database: %v", err)
	}
	if _, err := db.FanOut(ctx); !errors.Is(err, ErrStorageUnavailable) {
		t.Fatalf("fan-out on a read-only database: %v", err)
	}
	// Validation reads memory only.
	if v := mustLookup(t, db, acc.Secret); v.Check(db.Now()) != nil || v.Credits != 100 {
		t.Fatalf("index after failed writes: %+v", v)
	}

	setReadOnly(false)
	alias, err := db.CreateAlias(ctx, owner, acc.Account.ID, NewAlias{Name: "site"})
	if err != nil {
		t.Fatalf("create alias once writable again: %v", err)
	}
	mustLookup(t, db, alias.Secret)
	c, err := db.Spend(ctx, &primary, 5, "order-1")
	if err != nil || c.Credits != 95 || c.Replayed {
		t.Fatalf("spend once writable again: %+v, %v", c, err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM keys WHERE account_id = ?`, acc.Account.ID); n != 2 {
		t.Fatalf("%d keys, want the primary and one alias", n)
	}
}
