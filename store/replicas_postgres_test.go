//go:build postgres

package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"keyd/store/storetest"
)

// replica opens the shared database at dsn as one more replica: joined, and
// following changes, woken by announcements and every poll.
func replica(t *testing.T, dsn string, s ReplicaSettings, poll time.Duration) (*DB, context.CancelFunc) {
	t.Helper()
	db := mustOpenDBAt(t, dsn, WithReplicaSettings(s))
	ctx, stop := context.WithCancel(context.Background())
	if err := db.JoinReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { db.FollowChanges(ctx, poll); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return db, stop
}

// A change made on one replica is in the other's index by the time the
// call that made it returns: a new key validates there, a deactivated one
// is refused there.
func TestReplicasApplyEveryChangeBeforeItIsAnswered(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	settings := ReplicaSettings{Timeout: 30 * time.Second, Wait: 30 * time.Second}
	// Woken only by announcements: the poll is an hour.
	a, _ := replica(t, dsn, settings, time.Hour)
	b, _ := replica(t, dsn, settings, time.Hour)
	c, _ := replica(t, dsn, settings, time.Hour)
	if err := a.followOnce(ctx); err != nil { // a heartbeat, which counts the live
		t.Fatal(err)
	}
	if live := a.LiveReplicas(); live != 3 {
		t.Fatalf("a sees %d live replicas, want 3", live)
	}

	acc := mustCreate(t, a, "acme", "pro", 100)
	for i := range 20 {
		alias, err := a.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: fmt.Sprint("site ", i)})
		if err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]*DB{"b": b, "c": c} {
			if v, ok := r.LookupKey(HashKey(alias.Secret)); !ok || v.Check(time.Now()) != nil {
				t.Fatalf("trial %d: replica %s does not accept the alias just created on a", i, name)
			}
		}
		// Deactivated on b: refused on a and c by the time b answers.
		if _, err := b.SetAliasStatus(ctx, SystemActor, acc.Account.ID, alias.Key.ID, false); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]*DB{"a": a, "c": c} {
			if v, ok := r.LookupKey(HashKey(alias.Secret)); !ok || v.Check(time.Now()) == nil {
				t.Fatalf("trial %d: replica %s still accepts the alias deactivated on b", i, name)
			}
		}
	}
	if st := a.Replicas(); st.WaitTimeouts != 0 || st.CutOff {
		t.Fatalf("replica a: %+v, want no wait timed out and not cut off", st)
	}
}

// A replica that stops following (a process that hangs, or is cut off from
// the database) is waited for, as long as Wait, while it was heard from
// within Timeout; then changes no longer wait for it. It knows it is cut
// off, and refuses validations when set to.
func TestReplicaThatStopsFollowingIsWaitedForThenNot(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	settings := ReplicaSettings{Timeout: 2 * time.Second, Wait: 300 * time.Millisecond, RefuseWhenCutOff: true}
	a, _ := replica(t, dsn, settings, settings.Timeout/12) // as keyd serve polls
	b, stopB := replica(t, dsn, settings, settings.Timeout/12)
	acc := mustCreate(t, a, "acme", "pro", 100)
	stopB()

	started := time.Now()
	if _, err := a.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "while b hangs"}); err != nil {
		t.Fatal(err)
	}
	if st := a.Replicas(); st.WaitTimeouts != 1 {
		t.Fatalf("after a change b never applied: %d waits timed out, want 1", st.WaitTimeouts)
	}
	if took := time.Since(started); took < settings.Wait {
		t.Fatalf("the change returned after %v, before the wait of %v for b was over", took, settings.Wait)
	}
	if b.RefuseValidations() {
		t.Fatal("b refuses validations before its timeout")
	}

	// Once b has not been heard from for Timeout, changes do not wait for
	// it, and b, which knows it, refuses validations.
	time.Sleep(settings.Timeout + 100*time.Millisecond)
	if !b.RefuseValidations() || !b.Replicas().CutOff {
		t.Fatal("b, cut off for longer than its timeout, still validates")
	}
	if _, err := a.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "after b timed out"}); err != nil {
		t.Fatal(err)
	}
	if st := a.Replicas(); st.WaitTimeouts != 1 {
		t.Fatalf("a change waited for a replica gone past its timeout: %d waits timed out, want still 1", st.WaitTimeouts)
	}
	if a.RefuseValidations() {
		t.Fatal("a, which reaches the database, refuses validations")
	}

	// Back: b catches up, confirms, and validates again.
	if err := b.followOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if b.RefuseValidations() {
		t.Fatal("b still refuses validations after reaching the database again")
	}
	if nb, _ := b.index.Counts(); nb != 3 {
		t.Fatalf("b holds %d keys after catching up, want 3 (a primary and the two aliases made meanwhile)", nb)
	}

	// Leaving at shutdown: no change waits for b any more at all.
	if err := b.LeaveReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	if live := queryInt(t, a, `SELECT count(*) FROM replicas`); live != 1 {
		t.Fatalf("%d replicas registered after b left, want 1", live)
	}
}

// A scheduled job runs on one replica per schedule.
func TestJobRunsOncePerScheduleAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	a := mustOpenDBAt(t, dsn)
	b := mustOpenDBAt(t, dsn)
	const every = 400 * time.Millisecond
	claims := func() (n int) {
		for _, db := range []*DB{a, b, a, b} {
			mine, err := db.ClaimJobRun(ctx, "expire-aliases", every)
			if err != nil {
				t.Fatal(err)
			}
			if mine {
				n++
			}
		}
		return n
	}
	if n := claims(); n != 1 {
		t.Fatalf("%d of 4 replicas ran the job, want 1", n)
	}
	time.Sleep(every)
	if n := claims(); n != 1 {
		t.Fatalf("next schedule: %d of 4 replicas ran the job, want 1", n)
	}
	if mine, err := a.ClaimJobRun(ctx, "release-idle-sites", every); err != nil || !mine {
		t.Fatalf("another job's first run: %v, %v; want it claimed", mine, err)
	}
}

// By default (Wait 0) a change waits for a silent replica only until it
// has not been heard from for Timeout: it ends because the replica is gone,
// never because the wait ran out first.
func TestChangeWaitsForASilentReplicaUntilItsTimeout(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	settings := ReplicaSettings{Timeout: time.Second}
	a, _ := replica(t, dsn, settings, settings.Timeout/12)
	_, stopB := replica(t, dsn, settings, settings.Timeout/12)
	acc := mustCreate(t, a, "acme", "pro", 100)
	stopB()
	time.Sleep(50 * time.Millisecond) // b's last heartbeat is now well before the change
	if _, err := a.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "while b is silent"}); err != nil {
		t.Fatal(err)
	}
	if st := a.Replicas(); st.WaitTimeouts != 0 {
		t.Fatalf("%d waits ran out; want the wait to end with b's timeout", st.WaitTimeouts)
	}
}

// A charge writes no event: the replica that made it announces the
// accounts and the limited keys it charged, and the others read their pools
// and spending afresh, so that validation there shows them. Announcements
// made while a replica was not listening are made up for when it listens
// again: it reads every pool and every key's spending.
func TestChargesReachTheOtherReplicas(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	settings := ReplicaSettings{Timeout: 30 * time.Second, Wait: 30 * time.Second}
	// Woken only by announcements: the poll is an hour.
	a, _ := replica(t, dsn, settings, time.Hour)
	b, stopB := replica(t, dsn, settings, time.Hour)
	acc := mustCreate(t, a, "acme", "pro", 1000)
	alias, err := a.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "client",
		SpendLimit: &SpendLimit{Limit: 500, Period: PeriodDay}})
	if err != nil {
		t.Fatal(err)
	}
	spend := func(secret string, units int64) {
		t.Helper()
		v := mustLookup(t, a, secret)
		if _, err := a.Spend(ctx, &v, units, ""); err != nil {
			t.Fatal(err)
		}
	}
	// seenOnB waits until b shows the pool and what the alias spent.
	seenOnB := func(what string, credits, aliasSpent int64) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			p := mustLookup(t, b, acc.Secret)
			l := mustLookup(t, b, alias.Secret)
			al, _ := l.Allowance(time.Now())
			if p.Credits == credits && l.Credits == credits && al.Spent == aliasSpent {
				return
			}
			got = fmt.Sprintf("pool %d (by the alias %d), the alias spent %d", p.Credits, l.Credits, al.Spent)
		}
		t.Fatalf("%s: b shows %s; want pool %d, the alias spent %d", what, got, credits, aliasSpent)
	}

	spend(acc.Secret, 7)
	spend(alias.Secret, 3)
	seenOnB("charges on a", 990, 3)

	// One transaction charging 400 accounts: its announcement is too long
	// for one notification, and takes several.
	const many = 400
	secrets := make([]string, many)
	ids := make([]string, many)
	for i := range secrets {
		c := mustCreate(t, a, fmt.Sprint("many-", i), "pro", 100)
		secrets[i], ids[i] = c.Secret, c.Account.ID
	}
	if _, err := a.writeTx(ctx, func(tx *Tx) error {
		for _, id := range ids {
			if _, charged, err := tx.spendCredits(ctx, id, 1); err != nil || !charged {
				return fmt.Errorf("charge %s: %v, %v", id, charged, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		behind := 0
		for _, s := range secrets {
			if mustLookup(t, b, s).Credits != 99 {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still shows %d of %d pools charged on a as they were", behind, many)
		}
	}

	// Charged while b does not listen: once it listens again it reads
	// everything.
	stopB()
	spend(acc.Secret, 5)
	spend(alias.Secret, 4)
	again, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.FollowChanges(again, time.Hour); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	seenOnB("charges made while b did not listen", 981, 7)
}
