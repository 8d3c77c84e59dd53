package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyd/store/sqlite"
)

// TestBackupWhileWriting copies a database while another goroutine keeps
// creating and deleting aliases and spending credits, then opens the copy
// and checks that it is whole, private and one consistent snapshot.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := mustOpenDBAt(t, filepath.Join(dir, "keyd.db"))
	if _, err := db.Seed(ctx, SeedOptions{Keys: 5000}, nil); err != nil {
		t.Fatal(err)
	}
	acc := mustCreate(t, db, "writer", "mega", 1_000_000)
	before, err := db.ListAccounts(ctx, AccountQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}

	// Small steps, so that the copy takes many of them while writes go on.
	defer func(n int) { sqlite.BackupStepPages = n }(sqlite.BackupStepPages)
	sqlite.BackupStepPages = 16

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		v := mustLookup(t, db, acc.Secret)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "alias " + strconv.Itoa(i)})
			if err == nil {
				err = db.DeleteAlias(ctx, SystemActor, acc.Account.ID, a.Key.ID)
			}
			if err == nil {
				_, err = db.Spend(ctx, &v, 1, "")
			}
			if err != nil {
				writeErr = err
				return
			}
			writes.Add(1)
		}
	}()
	// Let the writer get going before the copy starts.
	for writes.Load() < 5 {
		time.Sleep(time.Millisecond)
	}

	dest := filepath.Join(dir, "backup.db")
	err = db.Backup(ctx, dest)
	writesDuring := writes.Load()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if writeErr != nil {
		t.Fatalf("writer: %v", writeErr)
	}
	t.Logf("%d writes while copying", writesDuring)

	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(dest + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is left behind: %v", err)
	}

	bak := mustOpenDBAt(t, dest)
	if err := bak.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := bak.ListAccounts(ctx, AccountQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(before) {
		t.Fatalf("backup has %d accounts, want %d", len(got), len(before))
	}
	for i := range before {
		if got[i].ID != before[i].ID || got[i].Name != before[i].Name {
			t.Errorf("account %d: backup has %s %q, want %s %q", i, got[i].ID, got[i].Name, before[i].ID, before[i].Name)
		}
	}
	if n, m := queryInt(t, bak, "SELECT count(*) FROM keys"), queryInt(t, db, "SELECT count(*) FROM keys"); n < 5001 || n > m {
		t.Errorf("backup has %d keys, want from 5001 to %d", n, m)
	}
	if bak.LoadStats().IndexKeys == 0 {
		t.Error("the backup's key index is empty")
	}
	if _, ok := bak.LookupKey(HashKey(acc.Secret)); !ok {
		t.Error("the writer's primary key is not in the backup")
	}
	// One snapshot: every alias in the copy has its alias.created event and
	// every deleted one its alias.deleted event.
	if a, e := queryInt(t, bak, "SELECT count(*) FROM keys WHERE account_id = ? AND type = 'alias'", acc.Account.ID),
		queryInt(t, bak, "SELECT count(*) FROM events WHERE account_id = ? AND type = 'alias.created'", acc.Account.ID); a != e {
		t.Errorf("backup has %d aliases but %d alias.created events", a, e)
	}
	if a, e := queryInt(t, bak, "SELECT count(*) FROM keys WHERE account_id = ? AND type = 'alias' AND status = 'revoked'", acc.Account.ID),
		queryInt(t, bak, "SELECT count(*) FROM events WHERE account_id = ? AND type = 'alias.deleted'", acc.Account.ID); a != e {
		t.Errorf("backup has %d deleted aliases but %d alias.deleted events", a, e)
	}

	// The copy is never written over.
	if err := db.Backup(ctx, dest); err == nil {
		t.Error("a second backup to the same file succeeded")
	}
}

func TestBackupCancelled(t *testing.T) {
	db := mustOpenDBAt(t, filepath.Join(t.TempDir(), "keyd.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest := filepath.Join(t.TempDir(), "b.db")
	if err := db.Backup(ctx, dest); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup with a cancelled context: %v", err)
	}
	for _, p := range []string{dest, dest + ".partial"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want it absent", p, err)
		}
	}
}
