package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"keyd/store"
)

// unwritableStore fails to record attempts and to give leases up while full
// is set, as the store does when the disk is full.
type unwritableStore struct {
	*store.DB
	full atomic.Bool
}

func (s *unwritableStore) RecordAttempt(ctx context.Context, rec store.AttemptRecord) error {
	if s.full.Load() {
		return fmt.Errorf("%w: database or disk is full", store.ErrStorageUnavailable)
	}
	return s.DB.RecordAttempt(ctx, rec)
}

func (s *unwritableStore) ReleaseMessages(ctx context.Context, owner string, ids ...string) error {
	if s.full.Load() {
		return fmt.Errorf("%w: database or disk is full", store.ErrStorageUnavailable)
	}
	return s.DB.ReleaseMessages(ctx, owner, ids...)
}

// TestUnrecordedAttemptIsNotResentAtOnce: a delivery whose attempt cannot be
// written is sent again only after a pause, not in a loop as fast as the
// receiver answers, and is recorded once the database takes writes again.
func TestUnrecordedAttemptIsNotResentAtOnce(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	var hits atomic.Int64
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	hook, _ := e.endpoint(rc.URL, "alias.*")
	st := &unwritableStore{DB: e.db}
	st.full.Store(true)
	w := NewWorker(st, WorkerConfig{AllowPrivate: true, Now: e.clock.Now, Rand: func() float64 { return 0.5 }})
	e.alias("client")

	for range 20 {
		if err := w.Sweep(e.ctx()); err != nil {
			t.Fatal(err)
		}
		w.wg.Wait()
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("the receiver got %d requests while attempts could not be recorded, want 1", n)
	}
	if m := e.oneMessage(hook.ID); m.Status != store.MessagePending {
		t.Fatalf("message %+v", m)
	}

	st.full.Store(false)
	e.clock.Advance(unrecordedRetry)
	if err := w.Sweep(e.ctx()); err != nil {
		t.Fatal(err)
	}
	w.wg.Wait()
	if n := hits.Load(); n != 2 {
		t.Fatalf("the receiver got %d requests, want 2", n)
	}
	if m := e.oneMessage(hook.ID); m.Status != store.MessageDelivered {
		t.Fatalf("once writable, message %+v", m)
	}
}
