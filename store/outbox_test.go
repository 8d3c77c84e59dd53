package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// The outbox shared by several keyd processes: each claims (leases) what it
// sends. Two DBs on one database stand for two processes.

// openReplica opens the database at path a second time, on clock, as
// another keyd process would.
func openReplica(t *testing.T, path string, clock func() time.Time) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, testOptions(path, []Option{WithClock(clock)})...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// claimIDs claims for owner at now and returns the ids claimed.
func claimIDs(t *testing.T, db *DB, owner string, now time.Time) []string {
	t.Helper()
	msgs, err := db.ClaimDueMessages(context.Background(), owner, now, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

// claimNext claims for owner at now and expects exactly message id.
func claimNext(t *testing.T, db *DB, owner string, now time.Time, id string) OutboxMessage {
	t.Helper()
	msgs, err := db.ClaimDueMessages(context.Background(), owner, now, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("%s claimed %+v, want %s alone", owner, msgs, id)
	}
	return msgs[0]
}

// recordDelivered records a 2xx attempt of owner's.
func recordDelivered(t *testing.T, db *DB, owner, id string, at time.Time) {
	t.Helper()
	if err := db.RecordAttempt(context.Background(), AttemptRecord{MessageID: id, Owner: owner, At: at, StatusCode: 200,
		Outcome: "success", Delivered: true}); err != nil {
		t.Fatal(err)
	}
}

// A message is leased to one owner at a time, and an endpoint has one
// message leased at a time: the next goes out once the one before is
// attempted, whoever claims it.
func TestClaimLeasesOneMessagePerEndpointToOneOwner(t *testing.T) {
	ctx := context.Background()
	a, clock, path := openStoreAt(t)
	b := openReplica(t, path, clock.Now)
	acc := createTestAccount(t, a, "pro")
	w1, _ := createTestWebhook(t, a, acc.Account.ID, "alias.*")
	w2, _ := createTestWebhook(t, a, acc.Account.ID, "alias.*")
	for _, name := range []string{"one", "two"} {
		if _, err := a.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.FanOut(ctx); err != nil {
		t.Fatal(err)
	}
	m1, m2 := messagesFor(t, a, acc.Account.ID, w1.ID), messagesFor(t, a, acc.Account.ID, w2.ID)
	now := clock.Now()

	got := claimIDs(t, a, "a", now)
	slices.Sort(got)
	want := []string{m1[0].ID, m2[0].ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("a claimed %v, want the first message of each endpoint %v", got, want)
	}
	if got := claimIDs(t, b, "b", now); len(got) != 0 {
		t.Fatalf("b claimed %v while a holds both endpoints", got)
	}
	if got := claimIDs(t, a, "a", now); len(got) != 0 {
		t.Fatalf("a claimed %v again", got)
	}

	recordDelivered(t, a, "a", m1[0].ID, now)
	claimNext(t, b, "b", now, m1[1].ID) // the next of w1, after the first was attempted
	if got := claimIDs(t, a, "a", now); len(got) != 0 {
		t.Fatalf("a claimed %v while b holds w1 and a w2", got)
	}
	var owner string
	if err := a.r.QueryRowContext(ctx, `SELECT lease_owner FROM webhook_messages WHERE id = ?`, m1[0].ID).Scan(&owner); err == nil {
		t.Fatalf("a delivered message is still leased to %q", owner)
	}
}

// A worker that claims a message and dies leaves it leased until the lease
// runs out; then another takes it over, the same message with its tries
// and schedule as recorded. The first worker's attempt, recorded late,
// changes nothing of the other's delivery.
func TestExpiredLeaseIsTakenOverAndALateAttemptChangesNothing(t *testing.T) {
	ctx := context.Background()
	b, clock, path := openStoreAt(t)
	a := openReplica(t, path, clock.Now)
	acc := createTestAccount(t, b, "pro")
	w, _ := createTestWebhook(t, b, acc.Account.ID, "alias.*")
	if _, err := b.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FanOut(ctx); err != nil {
		t.Fatal(err)
	}
	id := messagesFor(t, b, acc.Account.ID, w.ID)[0].ID

	// a's first attempt fails and is scheduled again.
	claimNext(t, a, "a", clock.Now(), id)
	retry := clock.Now().Add(10 * time.Second)
	if err := a.RecordAttempt(ctx, AttemptRecord{MessageID: id, Owner: "a", At: clock.Now(), StatusCode: 500,
		Outcome: "retry", NextAttemptAt: &retry}); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, b, "b", clock.Now()); len(got) != 0 {
		t.Fatalf("b claimed %v before the retry is due", got)
	}

	// At the retry a claims it again and dies mid-delivery.
	clock.Advance(10 * time.Second)
	claimed, err := a.ClaimDueMessages(ctx, "a", clock.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 1 || claimed[0].Tries != 1 {
		t.Fatalf("a's second claim: %+v, %v", claimed, err)
	}
	lateAt := clock.Now()
	a.Close()
	if got := claimIDs(t, b, "b", clock.Now().Add(59*time.Second)); len(got) != 0 {
		t.Fatalf("b claimed %v while a's lease runs", got)
	}

	clock.Advance(time.Minute)
	taken, err := b.ClaimDueMessages(ctx, "b", clock.Now(), time.Minute, 10)
	if err != nil || len(taken) != 1 {
		t.Fatalf("b's claim after the lease ran out: %+v, %v", taken, err)
	}
	if taken[0].ID != id || taken[0].Tries != 1 || !slices.Equal(taken[0].Body, claimed[0].Body) {
		t.Fatalf("b took over %s with %d tries, want %s with 1, the same body", taken[0].ID, taken[0].Tries, id)
	}
	// b fails too: the schedule goes on from a's tries.
	retry = clock.Now().Add(30 * time.Second)
	if err := b.RecordAttempt(ctx, AttemptRecord{MessageID: id, Owner: "b", At: clock.Now(), StatusCode: 503,
		Outcome: "retry", NextAttemptAt: &retry}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	if m := claimNext(t, b, "b", clock.Now(), id); m.Tries != 2 {
		t.Fatalf("third attempt with %d tries recorded, want 2", m.Tries)
	}
	deliveredAt := clock.Now()
	recordDelivered(t, b, "b", id, deliveredAt)

	// a's attempt from before it died arrives last, a failure.
	late := openReplica(t, path, clock.Now)
	clock.Advance(time.Minute)
	giveUp := AttemptRecord{MessageID: id, Owner: "a", At: lateAt, StatusCode: 0, Error: "timeout", Outcome: "retry"}
	if err := late.RecordAttempt(ctx, giveUp); err != nil {
		t.Fatal(err)
	}
	m, err := b.GetMessage(ctx, acc.Account.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != MessageDelivered || m.DeliveredAt == nil || !m.DeliveredAt.Equal(deliveredAt) || m.NextAttemptAt != nil {
		t.Fatalf("after a late attempt: %+v", m)
	}
	outcomes := []string{}
	for _, at := range m.Attempts {
		outcomes = append(outcomes, at.Outcome)
	}
	if !slices.Equal(outcomes, []string{"retry", "retry", "success", "retry"}) {
		t.Fatalf("attempts %v: the late one is logged after the others", outcomes)
	}
	if n := queryInt(t, b, `SELECT tries FROM webhook_messages WHERE id = ?`, id); n != 3 {
		t.Fatalf("tries %d, want 3: the late attempt is not counted", n)
	}
	hook, err := b.GetWebhook(ctx, acc.Account.ID, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if hook.FailingSince != nil || hook.LastSuccessAt == nil || !hook.LastSuccessAt.Equal(deliveredAt) {
		t.Fatalf("the endpoint after a late failure: failing since %v, last success %v", hook.FailingSince, hook.LastSuccessAt)
	}
}

// ReleaseMessages gives up the owner's leases only: a released message is
// due at once to the next claim.
func TestReleasedMessageIsDueAtOnce(t *testing.T) {
	ctx := context.Background()
	db, clock, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	w, _ := createTestWebhook(t, db, acc.Account.ID, "alias.*")
	if _, err := db.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FanOut(ctx); err != nil {
		t.Fatal(err)
	}
	id := messagesFor(t, db, acc.Account.ID, w.ID)[0].ID
	claimNext(t, db, "a", clock.Now(), id)
	if err := db.ReleaseMessages(ctx, "b", id); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, db, "b", clock.Now()); len(got) != 0 {
		t.Fatalf("b released a's lease and claimed %v", got)
	}
	if err := db.ReleaseMessages(ctx, "a", id); err != nil {
		t.Fatal(err)
	}
	if m := claimNext(t, db, "b", clock.Now(), id); m.Tries != 0 {
		t.Fatalf("a released message has %d tries", m.Tries)
	}
}

// Two processes claiming and recording side by side: each message is
// claimed once, and each endpoint's messages are claimed in event order,
// one at a time.
func TestConcurrentClaimsShareTheOutbox(t *testing.T) {
	ctx := context.Background()
	a, clock, path := openStoreAt(t)
	b := openReplica(t, path, clock.Now)
	acc := createTestAccount(t, a, "mega")
	const endpoints, events = 3, 20 // mega allows 25 aliases
	var hooks []Webhook
	for range endpoints {
		w, _ := createTestWebhook(t, a, acc.Account.ID, "alias.*")
		hooks = append(hooks, w)
	}
	for i := range events {
		if _, err := a.CreateAlias(ctx, SystemActor, acc.Account.ID, NewAlias{Name: fmt.Sprintf("client %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.FanOut(ctx); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()

	var (
		mu       sync.Mutex
		order    []string              // message ids in the order claimed
		inFlight = map[string]string{} // endpoint -> message leased
		problems []string
	)
	run := func(db *DB, owner string) error {
		for {
			msgs, err := db.ClaimDueMessages(ctx, owner, now, time.Minute, 2)
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return nil
			}
			mu.Lock()
			for _, m := range msgs {
				if other, ok := inFlight[m.EndpointID]; ok {
					problems = append(problems, fmt.Sprintf("%s claimed %s while %s is in flight", owner, m.ID, other))
				}
				inFlight[m.EndpointID] = m.ID
				order = append(order, m.ID)
			}
			mu.Unlock()
			for _, m := range msgs {
				mu.Lock()
				delete(inFlight, m.EndpointID)
				mu.Unlock()
				if err := db.RecordAttempt(ctx, AttemptRecord{MessageID: m.ID, Owner: owner, At: now, StatusCode: 200,
					Outcome: "success", Delivered: true}); err != nil {
					return err
				}
			}
		}
	}
	errs := make(chan error, 2)
	go func() { errs <- run(a, "a") }()
	go func() { errs <- run(b, "b") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	// Whichever stopped first found the other holding the last messages,
	// and the other went on: nothing is left.
	if left := claimIDs(t, a, "a", now); len(left) != 0 {
		t.Fatalf("messages %v left pending", left)
	}
	seen := map[string]bool{}
	for _, id := range order {
		if seen[id] {
			t.Fatalf("message %s claimed twice", id)
		}
		seen[id] = true
	}
	for _, w := range hooks {
		var claimed []string
		msgs := messagesFor(t, a, acc.Account.ID, w.ID)
		for _, id := range order {
			if slices.ContainsFunc(msgs, func(m WebhookMessage) bool { return m.ID == id }) {
				claimed = append(claimed, id)
			}
		}
		var want []string
		for _, m := range msgs {
			want = append(want, m.ID)
			if m.Status != MessageDelivered || len(m.Attempts) != 1 {
				t.Fatalf("message %s: %s after %d attempts", m.ID, m.Status, len(m.Attempts))
			}
		}
		if len(want) != events || !slices.Equal(claimed, want) {
			t.Fatalf("endpoint %s: claimed %v, want event order %v", w.ID, claimed, want)
		}
	}
}
