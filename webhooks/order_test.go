package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyd/store"
)

// arrival is one request as an ordering receiver saw it.
type arrival struct {
	msgID    string
	typ      string
	sequence int64
}

// orderReceiver records the messages in the order they arrive and how many
// were in flight at once, answering each with answerFor (200 when nil).
type orderReceiver struct {
	*receiver
	mu          sync.Mutex
	arrived     []arrival
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

func newOrderReceiver(t *testing.T, answerFor func(n int) int) *orderReceiver {
	t.Helper()
	rc := &orderReceiver{}
	rc.receiver = newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		n := rc.inFlight.Add(1)
		defer rc.inFlight.Add(-1)
		for m := rc.maxInFlight.Load(); n > m && !rc.maxInFlight.CompareAndSwap(m, n); m = rc.maxInFlight.Load() {
		}
		// The receiver has kept the body; this handler's copy is read.
		p, err := store.ParseWebhookBody(rc.lastBodyFor(r.Header.Get(HeaderID)))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.arrived = append(rc.arrived, arrival{r.Header.Get(HeaderID), p.Type, p.Sequence})
		count := len(rc.arrived)
		rc.mu.Unlock()
		// Hold the answer a moment, so that a second message started
		// meanwhile would overtake this one.
		time.Sleep(2 * time.Millisecond)
		code := http.StatusOK
		if answerFor != nil {
			code = answerFor(count)
		}
		w.WriteHeader(code)
	})
	return rc
}

// lastBodyFor returns the body of the latest request with webhook-id id.
func (rc *orderReceiver) lastBodyFor(id string) []byte {
	reqs := rc.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].header.Get(HeaderID) == id {
			return reqs[i].body
		}
	}
	return nil
}

func (rc *orderReceiver) arrivals() []arrival {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]arrival(nil), rc.arrived...)
}

// Aliases created, deactivated, reactivated and deleted in quick
// succession (by the command line, whose changes the worker finds all at
// once) reach one receiver in the order they were committed, one at a
// time, each with the next sequence number of the account.
func TestRapidChangesArriveInSequenceOrder(t *testing.T) {
	e := newWorkerEnv(t, true, WorkerConfig{})
	rc := newOrderReceiver(t, nil)
	hook, _ := e.endpoint(rc.URL, "alias.*")

	acc := e.account.Account.ID
	const aliases = 6
	for i := range aliases {
		c := e.alias(fmt.Sprintf("client %d", i))
		if _, err := e.db.SetAliasStatus(e.ctx(), store.SystemActor, acc, c.Key.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.SetAliasStatus(e.ctx(), store.SystemActor, acc, c.Key.ID, true); err != nil {
			t.Fatal(err)
		}
		if err := e.db.DeleteAlias(e.ctx(), store.SystemActor, acc, c.Key.ID); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const events = 4 * aliases
	waitFor(t, "every message delivered", func() bool {
		msgs := e.messages(hook.ID)
		for _, m := range msgs {
			if m.Status != store.MessageDelivered {
				return false
			}
		}
		return len(msgs) == events
	})

	got := rc.arrivals()
	if len(got) != events {
		t.Fatalf("%d messages arrived, want %d", len(got), events)
	}
	types := []string{store.EventAliasCreated, store.EventAliasDeactivated, store.EventAliasReactivated, store.EventAliasDeleted}
	for i := 1; i < len(got); i++ {
		if got[i].sequence != got[i-1].sequence+1 {
			t.Fatalf("arrival %d has sequence %d after %d: %+v", i, got[i].sequence, got[i-1].sequence, got)
		}
	}
	for i, a := range got {
		if a.typ != types[i%4] {
			t.Fatalf("arrival %d is %s, want %s: %+v", i, a.typ, types[i%4], got)
		}
	}
	if m := rc.maxInFlight.Load(); m != 1 {
		t.Fatalf("%d messages in flight to the endpoint at once, want 1", m)
	}
}

// A failing message goes to its retry schedule and does not hold back the
// messages behind it; its retry then arrives after them, and the sequence
// tells the receiver it is the older event.
func TestFailingMessageDoesNotBlockTheOnesBehindIt(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newOrderReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	hook, _ := e.endpoint(rc.URL, "alias.*")
	c := e.alias("client")
	if _, err := e.db.SetAliasStatus(e.ctx(), store.SystemActor, e.account.Account.ID, c.Key.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := e.db.DeleteAlias(e.ctx(), store.SystemActor, e.account.Account.ID, c.Key.ID); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	got := rc.arrivals()
	if len(got) != 3 || got[0].typ != store.EventAliasCreated || got[1].typ != store.EventAliasDeactivated || got[2].typ != store.EventAliasDeleted {
		t.Fatalf("before the retry: %+v; want created (failed), deactivated, deleted", got)
	}
	msgs := e.messages(hook.ID)
	if msgs[0].Status != store.MessagePending || msgs[1].Status != store.MessageDelivered || msgs[2].Status != store.MessageDelivered {
		t.Fatalf("statuses %s %s %s; want the first waiting for its retry", msgs[0].Status, msgs[1].Status, msgs[2].Status)
	}
	e.clock.Advance(5 * time.Second)
	e.sweep()
	got = rc.arrivals()
	if len(got) != 4 || got[3].msgID != got[0].msgID || got[3].sequence >= got[2].sequence {
		t.Fatalf("after the retry: %+v; want the first message again, with the lowest sequence", got)
	}
}
