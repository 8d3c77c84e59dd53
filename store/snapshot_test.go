package store

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// snapshotFixture is a database with accounts, aliases (one limited, one
// bound to sites, one inactive), a subaccount and a reset key in grace, and
// the plaintext of every key.
type snapshotFixture struct {
	path, snapshot string
	secrets        []string
	limited        string // the secret of the alias with a spend limit
	bound          string // the secret of the alias bound to a site
	accountID      string
}

func makeSnapshotFixture(t *testing.T) snapshotFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := snapshotFixture{path: filepath.Join(dir, "keyd.db"), snapshot: filepath.Join(dir, "keyd.db.index")}
	db, err := Open(ctx, f.path, WithClock(newFakeClock(t0).Now))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	owner := OperatorActor("127.0.0.1")
	for i, plan := range []string{"pro", "mega", "free"} {
		c := mustCreate(t, db, "acct"+string(rune('a'+i)), plan, int64(100*(i+1)))
		f.secrets = append(f.secrets, c.Secret)
		if i > 0 {
			continue
		}
		f.accountID = c.Account.ID
		for j, in := range []NewAlias{
			{Name: "limited", SpendLimit: &SpendLimit{Limit: 50, Period: PeriodDay}, MaxSites: ptr(2)},
			{Name: "bound", AllowedSites: []string{"example.com"}, Scopes: []string{"optimize"}},
			{Name: "to deactivate"},
		} {
			a, err := db.CreateAlias(ctx, owner, c.Account.ID, in)
			if err != nil {
				t.Fatal(err)
			}
			f.secrets = append(f.secrets, a.Secret)
			switch j {
			case 0:
				f.limited = a.Secret
			case 1:
				f.bound = a.Secret
			}
			if j == 2 {
				if _, err := db.SetAliasStatus(ctx, owner, c.Account.ID, a.Key.ID, false); err != nil {
					t.Fatal(err)
				}
			}
		}
		reset, err := db.ResetPrimaryKey(ctx, owner, c.Account.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f.secrets = append(f.secrets, reset.Secret)
		sub, err := db.CreateSubaccount(ctx, owner, c.Account.ID, NewAccount{Name: "sub", Email: "sub@example.com", Credits: 10})
		if err != nil {
			t.Fatal(err)
		}
		f.secrets = append(f.secrets, sub.Secret)
		limited := mustLookup(t, db, f.limited)
		if _, err := db.Spend(ctx, &limited, 3, ""); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// views looks up every secret, for comparing everything but the position
// and the state version (which counts the changes each DB applied).
func views(t *testing.T, db *DB, secrets []string) []KeyView {
	t.Helper()
	var out []KeyView
	for _, s := range secrets {
		v := mustLookup(t, db, s)
		v.pos, v.StateVersion = 0, 0
		out = append(out, v)
	}
	return out
}

func openSnapshotted(t *testing.T, f snapshotFixture) *DB {
	t.Helper()
	return mustOpenDBAt(t, f.path, WithClock(newFakeClock(t0).Now), WithIndexSnapshot(f.snapshot))
}

func TestSnapshotGivesTheSameIndexAsTheDatabase(t *testing.T) {
	f := makeSnapshotFixture(t)
	full := mustOpenDBAt(t, f.path, WithClock(newFakeClock(t0).Now))
	want := views(t, full, f.secrets)
	full.Close()

	first := openSnapshotted(t, f)
	if st := first.LoadStats(); st.FromSnapshot || st.SnapshotRejected != "" || st.SnapshotError != "" {
		t.Fatalf("first open: %+v, want a full load without complaint", st)
	}
	if _, err := os.Stat(f.snapshot); err != nil {
		t.Fatalf("no snapshot after a full load: %v", err)
	}
	first.Close()

	db := openSnapshotted(t, f)
	st := db.LoadStats()
	if !st.FromSnapshot || st.IndexKeys != len(f.secrets) || st.DatabaseKeys != len(f.secrets) {
		t.Fatalf("second open: %+v, want %d keys from the snapshot", st, len(f.secrets))
	}
	if got := views(t, db, f.secrets); !reflect.DeepEqual(got, want) {
		t.Errorf("from the snapshot:\n%+v\nfrom the database:\n%+v", got, want)
	}
	if _, ok := db.LookupKey(HashKey("not-a-key-at-all-xyz")); ok {
		t.Error("an unknown key was found")
	}
}

// Changes made while no keyd held the snapshot (by the CLI, or by a keyd
// that was killed) are caught up from the events; credits and spending,
// which change without events, are read afresh.
func TestSnapshotCatchesUpWithLaterChanges(t *testing.T) {
	ctx := context.Background()
	f := makeSnapshotFixture(t)
	openSnapshotted(t, f).Close() // writes the snapshot

	other := mustOpenDBAt(t, f.path, WithClock(newFakeClock(t0).Now))
	owner := OperatorActor("127.0.0.1")
	added, err := other.CreateAlias(ctx, owner, f.accountID, NewAlias{Name: "added later"})
	if err != nil {
		t.Fatal(err)
	}
	primary := mustLookup(t, other, f.secrets[0])
	bound := mustLookup(t, other, f.bound)
	if _, err := other.SetAliasStatus(ctx, owner, f.accountID, bound.KeyID, false); err != nil {
		t.Fatal(err)
	}
	limited := mustLookup(t, other, f.limited)
	if _, err := other.Spend(ctx, &limited, 7, ""); err != nil {
		t.Fatal(err)
	}
	want := views(t, other, append(f.secrets, added.Secret))
	other.Close()

	db := openSnapshotted(t, f)
	st := db.LoadStats()
	if !st.FromSnapshot || st.CaughtUpEvents < 2 {
		t.Fatalf("open: %+v, want the snapshot and the later events", st)
	}
	got := views(t, db, append(f.secrets, added.Secret))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after catching up:\n%+v\nwant:\n%+v", got, want)
	}
	if v := mustLookup(t, db, f.bound); v.Status != KeyInactive {
		t.Errorf("the alias deactivated later is %s in the index", v.Status)
	}
	if v := mustLookup(t, db, f.secrets[0]); v.Credits != primary.Credits-7 {
		t.Errorf("credits %d after the snapshot, want %d", v.Credits, primary.Credits-7)
	}
	if v := mustLookup(t, db, f.limited); v.spend.spent != 3+7 {
		t.Errorf("the limited alias spent %d after the snapshot, want 10", v.spend.spent)
	}
}

// Two keyds on one database (as make bench runs them): the one that did not
// see the other's charges must not write a snapshot that vouches for its
// credits.
func TestSnapshotOfAKeydThatMissedAnothersCharges(t *testing.T) {
	ctx := context.Background()
	f := makeSnapshotFixture(t)
	idle := openSnapshotted(t, f)
	busy := mustOpenDBAt(t, f.path, WithClock(newFakeClock(t0).Now))
	v := mustLookup(t, busy, f.secrets[0])
	if _, err := busy.Spend(ctx, &v, 5, ""); err != nil {
		t.Fatal(err)
	}
	busy.Close()
	// The idle keyd charges too, after the other: its count of charges is
	// no longer the one its index reflects.
	w := mustLookup(t, idle, f.secrets[6])
	if _, err := idle.Spend(ctx, &w, 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := idle.SaveIndexSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	idle.Close()

	db := openSnapshotted(t, f)
	if !db.LoadStats().FromSnapshot {
		t.Fatalf("not from the snapshot: %+v", db.LoadStats())
	}
	if got := mustLookup(t, db, f.secrets[0]).Credits; got != v.Credits-5 {
		t.Errorf("credits %d after the other keyd's charge, want %d", got, v.Credits-5)
	}
	if got := mustLookup(t, db, f.secrets[6]).Credits; got != w.Credits-1 {
		t.Errorf("credits %d after its own charge, want %d", got, w.Credits-1)
	}
}

// A snapshot that cannot be trusted is refused with its reason; keyd loads
// the database instead (with the same answers) and writes a good snapshot
// for the next start.
func TestSnapshotRefusedWhenItCannotBeTrusted(t *testing.T) {
	ctx := context.Background()
	cases := map[string]struct {
		spoil  func(t *testing.T, f snapshotFixture)
		reason string
	}{
		"a flipped byte in the records": {reason: "checksum", spoil: func(t *testing.T, f snapshotFixture) {
			b := mustRead(t, f.snapshot)
			b[len(b)-200] ^= 0x40
			mustWrite(t, f.snapshot, b)
		}},
		"cut short": {reason: "snapshot: section", spoil: func(t *testing.T, f snapshotFixture) {
			b := mustRead(t, f.snapshot)
			mustWrite(t, f.snapshot, b[:len(b)/2])
		}},
		"a changed header": {reason: "header checksum", spoil: func(t *testing.T, f snapshotFixture) {
			b := mustRead(t, f.snapshot)
			i := bytes.Index(b, []byte(`"schema":`))
			b[i+len(`"schema":`)] ^= 1
			mustWrite(t, f.snapshot, b)
		}},
		"not a snapshot": {reason: "not a snapshot", spoil: func(t *testing.T, f snapshotFixture) {
			mustWrite(t, f.snapshot, []byte("hello, this is not an index snapshot"))
		}},
		"of another database": {reason: "differs", spoil: func(t *testing.T, f snapshotFixture) {
			g := makeSnapshotFixture(t)
			openSnapshotted(t, g).Close()
			mustWrite(t, f.snapshot, mustRead(t, g.snapshot))
		}},
		"of a later state than a restored backup": {reason: "a restored backup", spoil: func(t *testing.T, f snapshotFixture) {
			backup := mustRead(t, f.path)
			db := mustOpenDBAt(t, f.path)
			if _, err := db.CreateAlias(ctx, OperatorActor("127.0.0.1"), f.accountID, NewAlias{Name: "after the backup"}); err != nil {
				t.Fatal(err)
			}
			db.Close()
			db = openSnapshotted(t, f) // catches up and writes a snapshot at shutdown
			if err := db.SaveIndexSnapshot(ctx); err != nil {
				t.Fatal(err)
			}
			db.Close()
			os.Remove(f.path + "-wal")
			os.Remove(f.path + "-shm")
			mustWrite(t, f.path, backup)
		}},
		"older than the events kept": {reason: "in the database", spoil: func(t *testing.T, f snapshotFixture) {
			last := addEventsAfterSnapshot(t, f)
			raw := openRawSQL(t, f.path)
			defer raw.Close()
			if _, err := raw.Exec(`DELETE FROM events WHERE seq < ?`, last); err != nil {
				t.Fatal(err)
			}
		}},
		"missing the events right after it": {reason: "no longer in the database", spoil: func(t *testing.T, f snapshotFixture) {
			last := addEventsAfterSnapshot(t, f)
			raw := openRawSQL(t, f.path)
			defer raw.Close()
			if _, err := raw.Exec(`DELETE FROM events WHERE seq = ?`, last-1); err != nil {
				t.Fatal(err)
			}
		}},
		"keys added without events": {reason: "keys after catching up", spoil: func(t *testing.T, f snapshotFixture) {
			db := mustOpenDBAt(t, f.path, WithoutIndex())
			if _, err := db.Seed(ctx, SeedOptions{Keys: 10, Force: true}, io.Discard); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := makeSnapshotFixture(t)
			openSnapshotted(t, f).Close()
			c.spoil(t, f)
			full := mustOpenDBAt(t, f.path)
			want := views(t, full, f.secrets)
			full.Close()

			db := openSnapshotted(t, f)
			st := db.LoadStats()
			if st.FromSnapshot || !strings.Contains(st.SnapshotRejected, c.reason) {
				t.Fatalf("load: %+v, want the snapshot refused for %q", st, c.reason)
			}
			if got := views(t, db, f.secrets); !reflect.DeepEqual(got, want) {
				t.Errorf("after refusing the snapshot:\n%+v\nwant:\n%+v", got, want)
			}
			db.Close()
			if st := openSnapshotted(t, f).LoadStats(); !st.FromSnapshot {
				t.Errorf("the next open: %+v, want the snapshot written after the full load", st)
			}
		})
	}
}

func TestSnapshotOffWritesNothing(t *testing.T) {
	f := makeSnapshotFixture(t)
	db := mustOpenDBAt(t, f.path)
	if err := db.SaveIndexSnapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(f.snapshot); !os.IsNotExist(err) {
		t.Errorf("a snapshot was written without WithIndexSnapshot: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// openRawSQL opens the database file without the store, foreign keys off,
// to change it behind the store's back.
func openRawSQL(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_foreign_keys=off")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// addEventsAfterSnapshot adds two events after the snapshot and returns
// the last one's sequence, for a test to delete events as a pruning would
// (events are kept for good today; should old ones ever be pruned, a
// snapshot whose next events are gone must be refused).
func addEventsAfterSnapshot(t *testing.T, f snapshotFixture) int64 {
	t.Helper()
	db := mustOpenDBAt(t, f.path)
	defer db.Close()
	for _, name := range []string{"after the snapshot", "and another"} {
		if _, err := db.CreateAlias(context.Background(), OperatorActor("127.0.0.1"), f.accountID, NewAlias{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	return queryInt(t, db, `SELECT max(seq) FROM events`)
}
