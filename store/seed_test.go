package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"keyd/store/sqlite"
	"keyd/store/storetest"
)

func openTestDB(t *testing.T, opts ...Option) (*DB, string) {
	t.Helper()
	path := storetest.DSN(t)
	db, err := Open(context.Background(), path, testOptions(path, opts)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestSeedMakesValidKeysTheIndexFinds(t *testing.T) {
	ctx := context.Background()
	db, path := openTestDB(t, WithoutIndex())
	var sample bytes.Buffer
	res, err := db.Seed(ctx, SeedOptions{Keys: 2000, SampleSize: 300}, &sample)
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != 2000 || res.Sampled != 300 || res.Accounts != 400 {
		t.Fatalf("seed made %+v, want 2000 keys in 400 accounts and 300 sampled", res)
	}
	db.Close()

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if st := db.LoadStats(); st.DatabaseKeys != 2000 || st.IndexKeys != 2000 || st.Accounts != 400 {
		t.Fatalf("load stats %+v", st)
	}
	seen := map[string]bool{}
	types := map[string]int{}
	sc := bufio.NewScanner(&sample)
	for sc.Scan() {
		key := sc.Text()
		if !WellFormedKey(key) {
			t.Fatalf("sample line %q is not a key", key)
		}
		if seen[key] {
			t.Fatalf("key %q sampled twice", key)
		}
		seen[key] = true
		v, ok := db.LookupKey(HashKey(key))
		if !ok {
			t.Fatalf("sampled key %q is not in the index", key)
		}
		if err := v.Check(db.Now()); err != nil || v.Hint != KeyHint(key) || v.Plan != seedPlan {
			t.Fatalf("sampled key %q: %+v, check %v", key, v, err)
		}
		if len(v.Scopes) != 1 || v.Scopes[0] != "*" || len(v.Sites) != 0 {
			t.Fatalf("sampled key %q has scopes %v and sites %v", key, v.Scopes, v.Sites)
		}
		types[v.Type]++
	}
	if len(seen) != 300 || types[KeyTypePrimary] == 0 || types[KeyTypeAlias] == 0 {
		t.Fatalf("sample has %d keys of types %v", len(seen), types)
	}

	// Rows are complete: what the owner's key listing reads back is right.
	for key := range seen {
		v, _ := db.LookupKey(HashKey(key))
		keys, err := db.ListKeys(ctx, v.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1+seedAliasesPerAccount {
			t.Fatalf("account %s has %d keys", v.AccountID, len(keys))
		}
		for _, k := range keys {
			if k.Status != KeyActive || len(k.ID) != len("key_")+16 || len(k.Hint) != 4 || k.ExpiresAt != nil || k.LastUsedAt != nil {
				t.Fatalf("listed key %+v", k)
			}
		}
		break
	}
}

func TestSeedRefusesRealAccountsUnlessForced(t *testing.T) {
	ctx := context.Background()
	db, _ := openTestDB(t)
	if _, err := db.CreateAccount(ctx, SystemActor, NewAccount{Name: "Real", Email: "real@example.com", Plan: "free"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Seed(ctx, SeedOptions{Keys: 10}, nil); !errors.Is(err, ErrRealAccounts) {
		t.Fatalf("seed on a real database: %v, want ErrRealAccounts", err)
	}
	res, err := db.Seed(ctx, SeedOptions{Keys: 10, Force: true}, nil)
	if err != nil || res.Keys != 10 {
		t.Fatalf("forced seed: %+v, %v", res, err)
	}
	// Seeding again on a database of synthetic accounts only is fine.
	db2, _ := openTestDB(t, WithoutIndex())
	for range 2 {
		if _, err := db2.Seed(ctx, SeedOptions{Keys: 7}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSeedSampleSizeBounds(t *testing.T) {
	db, _ := openTestDB(t, WithoutIndex())
	if _, err := db.Seed(context.Background(), SeedOptions{Keys: 5, SampleSize: 6}, &bytes.Buffer{}); err == nil {
		t.Fatal("a sample larger than the keys was accepted")
	}
}

// The writer connection keeps its own settings, also after a seed has
// changed them for its run: a sync on every commit, foreign keys, its
// checkpoint mark and its page cache.
// SQLite's writer settings, on SQLite whichever engine the tests run on.
func TestWriterSettingsSurviveSeed(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDBAt(t, filepath.Join(t.TempDir(), "keyd.db"), WithoutIndex())
	want := map[string]int64{
		"synchronous":        2, // FULL
		"foreign_keys":       1,
		"wal_autocheckpoint": sqlite.WriterCheckpointPages,
		"cache_size":         -2000, // SQLite's default
	}
	check := func(when string) {
		t.Helper()
		for name, w := range want {
			var got int64
			if err := db.w.QueryRowContext(ctx, "PRAGMA "+name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != w {
				t.Errorf("%s: writer's %s = %d, want %d", when, name, got, w)
			}
		}
	}
	check("after open")
	if _, err := db.Seed(ctx, SeedOptions{Keys: 100}, nil); err != nil {
		t.Fatal(err)
	}
	check("after seed")
}
