package main

import (
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAcknowledgedChangesSurviveKillUnderMixedLoad drives a mixed load
// (validations, alias creates, deactivations, reactivations and deletions,
// charges with idempotency keys, primary key resets, webhook deliveries)
// from several goroutines, SIGKILLs keyd at a random moment, restarts it on
// the same database, and checks that every acknowledged change holds, that
// no charge was lost or made twice, that every event reaches the receiver,
// and that the database is intact.
func TestAcknowledgedChangesSurviveKillUnderMixedLoad(t *testing.T) {
	start := time.Now()
	bin := buildKeyd(t)
	dbPath := filepath.Join(t.TempDir(), "keyd.db")
	rc := newHookReceiver()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)

	k := startKeyd(t, bin, dbPath)
	ml := setUpMixedLoad(t, newLoadClient(k.url), srv.URL, rc, 6)

	// Kill keyd between 1 and 3 seconds into the load.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	loadDone := make(chan struct{})
	go func() { ml.run(ctx, 0); close(loadDone) }()
	time.Sleep(time.Second + time.Duration(rand.Int64N(int64(2*time.Second))))
	ml.stopping.Store(true)
	if err := k.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-k.done
	<-loadDone
	acked, _, _ := rc.counts()
	t.Logf("killed after %d requests (%d webhooks received), %v since start", ml.stats.total(), acked, time.Since(start))
	if failed := ml.stats.failed(); len(failed) > 0 {
		t.Fatalf("answers that broke the contract before the kill:\n%s", strings.Join(failed, "\n"))
	}

	k = startKeyd(t, bin, dbPath)
	ml.lc = newLoadClient(k.url)
	ml.checkAcknowledged(t)

	db := openReadOnly(t, dbPath)
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if missing, err = ml.undelivered(db); err != nil {
			t.Fatal(err)
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Fatalf("%d events never reached the receiver after the restart, e.g. %s", len(missing), missing[0])
	}
	acked, dups, bad := rc.counts()
	if bad > 0 {
		t.Fatalf("%d webhooks failed signature verification", bad)
	}
	t.Logf("all %d webhooks received (%d again after the restart: at least once)", acked, dups)

	// An orderly stop, then the database as it was left.
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(30 * time.Second):
		t.Fatal("keyd did not stop on SIGTERM")
	}
	ml.checkCredits(t, db)
	var integrity string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q, %v", integrity, err)
	}
	t.Logf("checked after %v; answers by design: %v", time.Since(start), ml.stats.byDesign)
}
