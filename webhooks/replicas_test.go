package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyd/store"
)

// Several keyd processes on one database: each has a store and a worker of
// its own. Here a second store.DB opened on the test's database stands for
// the second process.

// replica opens e's database once more, on e's clock, with a worker of its
// own.
func (e *workerEnv) replica(cfg WorkerConfig) (*store.DB, *Worker) {
	e.t.Helper()
	db := openStore(e.t, e.db.Path(), store.WithClock(e.clock.Now))
	cfg.AllowPrivate, cfg.Now, cfg.Rand = true, e.clock.Now, e.w.cfg.Rand
	return db, NewWorker(db, cfg)
}

// pathReceiver answers 200 and records, for each path, the webhook-ids in
// the order they arrived and how many requests were in flight at once.
type pathReceiver struct {
	*receiver
	mu          sync.Mutex
	arrived     map[string][]string
	inFlight    map[string]int
	maxInFlight int
}

func newPathReceiver(t *testing.T) *pathReceiver {
	rc := &pathReceiver{arrived: map[string][]string{}, inFlight: map[string]int{}}
	rc.receiver = newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.inFlight[r.URL.Path]++
		rc.maxInFlight = max(rc.maxInFlight, rc.inFlight[r.URL.Path])
		rc.arrived[r.URL.Path] = append(rc.arrived[r.URL.Path], r.Header.Get(HeaderID))
		rc.mu.Unlock()
		// Hold the answer a moment, so that another message to the path
		// started meanwhile would be seen in flight.
		time.Sleep(time.Millisecond)
		rc.mu.Lock()
		rc.inFlight[r.URL.Path]--
		rc.mu.Unlock()
	})
	return rc
}

// Two workers on one database deliver a burst: each message once, to each
// endpoint in the order of its events and one at a time.
func TestTwoWorkersShareTheOutbox(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{Workers: 4})
	_, w2 := e.replica(WorkerConfig{Workers: 4})
	rc := newPathReceiver(t)
	paths := []string{"/a", "/b", "/c"}
	hooks := map[string]string{}
	for _, p := range paths {
		hook, _ := e.endpoint(rc.URL+p, "alias.*")
		hooks[p] = hook.ID
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range []*Worker{e.w, w2} {
		wg.Add(2)
		go func() { defer wg.Done(); w.Run(ctx) }()
		// A worker is told of its own process's commits only; the
		// scheduler's sweeps find the others'.
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				w.Wake()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	const events = 20
	for i := range events {
		e.alias(fmt.Sprintf("client %d", i))
	}
	waitFor(t, "every message delivered", func() bool {
		for _, id := range hooks {
			msgs := e.messages(id)
			for _, m := range msgs {
				if m.Status != store.MessageDelivered {
					return false
				}
			}
			if len(msgs) != events {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for p, id := range hooks {
		var want []string
		for _, m := range e.messages(id) {
			want = append(want, m.ID)
			if len(m.Attempts) != 1 {
				t.Fatalf("message %s was attempted %d times", m.ID, len(m.Attempts))
			}
		}
		if got := rc.arrived[p]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s received %v, want each message once in event order %v", p, got, want)
		}
	}
	if rc.maxInFlight != 1 {
		t.Fatalf("%d messages in flight to one endpoint at once, want 1", rc.maxInFlight)
	}
}

// A process that claims a message and dies before its attempt is recorded
// leaves the message to another once the lease runs out: the same message
// id, with its tries and retry schedule as recorded.
func TestDeadWorkersMessageIsTakenOverWithItsSchedule(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, script(answer(500, nil, ""), answer(500, nil, ""), answer(200, nil, "")))
	hook, _ := e.endpoint(rc.URL, "alias.*")
	e.alias("client")
	e.sweep() // the first attempt fails
	first := e.oneMessage(hook.ID)
	if first.NextAttemptAt == nil || len(rc.requests()) != 1 {
		t.Fatalf("after the first attempt: %+v", first)
	}

	// At the retry another process claims the message and dies.
	e.clock.Advance(first.NextAttemptAt.Sub(e.clock.Now()))
	dead, _ := e.replica(WorkerConfig{})
	claimed, err := dead.ClaimDueMessages(e.ctx(), "dead", e.clock.Now(), e.w.leaseFor, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != first.ID {
		t.Fatalf("the claim of the process about to die: %+v, %v", claimed, err)
	}
	dead.Close()
	e.sweep()
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests while the dead process's lease runs", n)
	}

	e.clock.Advance(e.w.leaseFor)
	at := e.clock.Now()
	e.sweep() // the second attempt, by this worker, fails as well
	m := e.oneMessage(hook.ID)
	want, _ := NextAttempt(2, at, 0, e.w.cfg.Rand)
	if m.Status != store.MessagePending || len(m.Attempts) != 2 || m.NextAttemptAt == nil || !m.NextAttemptAt.Equal(want) {
		t.Fatalf("after the takeover: %d attempts, next at %v; want 2, the schedule's second retry at %v",
			len(m.Attempts), m.NextAttemptAt, want)
	}
	e.clock.Advance(want.Sub(e.clock.Now()))
	e.sweep()
	m = e.oneMessage(hook.ID)
	reqs := rc.requests()
	if m.Status != store.MessageDelivered || len(m.Attempts) != 3 || len(reqs) != 3 {
		t.Fatalf("at the retry: %s after %d attempts, %d requests", m.Status, len(m.Attempts), len(reqs))
	}
	for _, r := range reqs {
		if id := r.header.Get(HeaderID); id != first.ID {
			t.Fatalf("sent as %s, want the same webhook-id %s every time", id, first.ID)
		}
	}
}

// A worker whose attempt outlasts its lease (a receiver that hangs) finds
// the message taken over and delivered by another; its own attempt,
// recorded last, is logged but undoes nothing.
func TestLateAttemptOfALostLeaseDoesNotUndoTheDelivery(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	_, w2 := e.replica(WorkerConfig{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var n atomic.Int64
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-release // the first attempt hangs until the other was recorded
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	hook, _ := e.endpoint(rc.URL, "alias.*")
	e.alias("client")
	if err := e.w.Sweep(e.ctx()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first attempt to arrive", func() bool { return n.Load() == 1 })

	sweepAll(t, w2)
	if n.Load() != 1 {
		t.Fatal("the other worker sent a message leased to the first")
	}
	e.clock.Advance(e.w.leaseFor)
	deliveredAt := e.clock.Now()
	sweepAll(t, w2)
	if m := e.oneMessage(hook.ID); m.Status != store.MessageDelivered || n.Load() != 2 {
		t.Fatalf("after the lease ran out the other worker left %+v, %d requests", m, n.Load())
	}

	releaseOnce.Do(func() { close(release) })
	e.w.wg.Wait() // the first worker records its 503
	m := e.oneMessage(hook.ID)
	if m.Status != store.MessageDelivered || m.DeliveredAt == nil || !m.DeliveredAt.Equal(deliveredAt) ||
		m.NextAttemptAt != nil || len(m.Attempts) != 2 {
		t.Fatalf("after the late attempt: %+v", m)
	}
	if w := e.webhook(hook.ID); w.FailingSince != nil || !w.Enabled {
		t.Fatalf("the late failure marked the endpoint failing: %+v", w)
	}
	reqs := rc.requests()
	if reqs[0].header.Get(HeaderID) != m.ID || reqs[1].header.Get(HeaderID) != m.ID {
		t.Fatal("the message went out under another webhook-id")
	}
	sweepAll(t, e.w)
	sweepAll(t, w2)
	if n.Load() != 2 {
		t.Fatalf("%d requests: the delivered message went out again", n.Load())
	}
}

// A process restarted after it was killed mid-delivery sends at once what
// its predecessor had claimed on this host, not when the leases run out; a
// lease of a process still running stays.
func TestRestartReleasesTheLeasesOfAProcessThatIsGone(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, answer(200, nil, ""))
	e.endpoint(rc.URL, "alias.*")
	e.endpoint(rc.URL, "alias.*")
	e.alias("client")
	if _, err := e.db.FanOut(e.ctx()); err != nil {
		t.Fatal(err)
	}

	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	running := exec.Command("sleep", "60")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { running.Process.Kill(); running.Wait() })
	host, _ := os.Hostname()
	gone := ownerID(host, pidNamespace(), exited.ProcessState.Pid(), "01", "01")
	live := ownerID(host, pidNamespace(), running.Process.Pid, "02", "01")
	endpointOf := map[string]string{} // owner -> the endpoint of the message it claimed
	for _, owner := range []string{gone, live} {
		claimed, err := e.db.ClaimDueMessages(e.ctx(), owner, e.clock.Now(), e.w.leaseFor, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("%s claimed %d messages, %v", owner, len(claimed), err)
		}
		endpointOf[owner] = claimed[0].EndpointID
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.w.Run(ctx); close(done) }()
	waitFor(t, "the gone process's message to be delivered", func() bool {
		return e.oneMessage(endpointOf[gone]).Status == store.MessageDelivered
	})
	cancel()
	<-done
	owners, err := e.db.LeaseOwners(e.ctx())
	if err != nil || len(owners) != 1 || owners[0] != live {
		t.Fatalf("leases held by %v, %v; want the running process's alone", owners, err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests, want the gone process's message alone", n)
	}
}

// Which lease owners a worker takes for gone: only processes of its host
// and process id namespace that no longer run, or that ran before it with
// its process id.
func TestOwnerGone(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	_, sibling := e.replica(WorkerConfig{})
	host, _ := os.Hostname()
	ns, pid := pidNamespace(), os.Getpid()
	if ns == "" {
		t.Fatal("no process id namespace on this host")
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	for owner, want := range map[string]bool{
		e.w.owner:                              false, // itself
		sibling.owner:                          false, // another worker of this process
		ownerID(host, ns, pid, "before", "01"): true,  // this process id, before this process
		ownerID(host, ns, exited.ProcessState.Pid(), "01", "01"):          true,  // exited
		ownerID(host+".other", ns, exited.ProcessState.Pid(), "01", "01"): false, // another host's
		ownerID(host, ns+"x", exited.ProcessState.Pid(), "01", "01"):      false, // another container's
		ownerID(host, "", exited.ProcessState.Pid(), "01", "01"):          false, // no namespace known
		"dead": false,
	} {
		if got := e.w.ownerGone(owner); got != want {
			t.Errorf("ownerGone(%q) = %v, want %v", owner, got, want)
		}
	}
}
