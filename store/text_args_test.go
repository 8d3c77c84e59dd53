package store

import (
	"context"
	"errors"
	"testing"
)

// An id or cursor from a request that is not text either engine keeps (a NUL
// byte, invalid UTF-8) names nothing: SQLite compares such bytes and finds
// no row, and PostgreSQL, whose text holds neither, must answer the same
// rather than fail the query.
func TestIDsThatAreNotTextNameNothing(t *testing.T) {
	db := mustOpenDB(t)
	ctx := context.Background()
	c := mustCreate(t, db, "acme", "pro", 10)
	for _, bad := range []string{"\x00", c.Key.ID + "\x00", "\xff\xfe", "key_\xc3"} {
		if _, err := db.GetAccount(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetAccount(%q): %v, want ErrNotFound", bad, err)
		}
		if _, err := db.GetAlias(ctx, c.Account.ID, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetAlias(%q): %v, want ErrNotFound", bad, err)
		}
		if _, err := db.SetAliasStatus(ctx, OperatorActor(""), c.Account.ID, bad, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetAliasStatus(%q): %v, want ErrNotFound", bad, err)
		}
		var invalid *InvalidError
		if _, err := db.ListAliases(ctx, c.Account.ID, "", bad, 10); !errors.As(err, &invalid) {
			t.Errorf("ListAliases before %q: %v, want an InvalidError", bad, err)
		}
		if _, err := db.ListAccounts(ctx, AccountQuery{After: bad, Limit: 10}); !errors.As(err, &invalid) {
			t.Errorf("ListAccounts after %q: %v, want an InvalidError", bad, err)
		}
	}
}
