package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"keyd/store"
)

// Store is what the worker needs from keyd's store.
type Store interface {
	// Changes signals after a local commit that appended events or
	// messages to send.
	Changes() <-chan struct{}
	FanOut(ctx context.Context) (int, error)
	ClaimDueMessages(ctx context.Context, owner string, now time.Time, leaseFor time.Duration, limit int) ([]store.OutboxMessage, error)
	RecordAttempt(ctx context.Context, rec store.AttemptRecord) error
	ReleaseMessages(ctx context.Context, owner string, ids ...string) error
	LeaseOwners(ctx context.Context) ([]string, error)
	ReleaseOwner(ctx context.Context, owner string) (int, error)
}

// WorkerConfig tunes a Worker. Zero values mean the defaults.
type WorkerConfig struct {
	// Client makes the requests; nil means NewClient(AllowPrivate). Its
	// Timeout bounds an attempt (ClientTimeout when it has none), and so
	// how long a claimed message is leased.
	Client       *http.Client
	AllowPrivate bool
	// Workers bounds deliveries in flight overall (default 8). One
	// endpoint has at most one in flight, so a slow receiver holds at most
	// one of them.
	Workers int
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
	// Rand spreads retries (see NextAttempt); nil means math/rand.
	Rand func() float64
	// StopGrace is how long Run lets deliveries in flight finish once its
	// context ends before it cancels them (default 5s). A cancelled
	// attempt is not recorded, so the message goes out again later.
	StopGrace time.Duration
	Logger    *slog.Logger
	// OnAttempt, if set, is told of every recorded attempt: "delivered"
	// (2xx), "retrying" (failed, another try scheduled), "failed" (no tries
	// left, or the address was refused) or "gone" (410, the endpoint is
	// disabled). It must not block.
	OnAttempt func(outcome string)
}

// unrecordedRetry is how long a message whose attempt could not be recorded
// waits before it is sent again.
const unrecordedRetry = 5 * time.Second

// recordTimeout bounds recording an attempt.
const recordTimeout = 30 * time.Second

// releaseTimeout bounds giving leases up, which a stopping worker does.
const releaseTimeout = 5 * time.Second

// leaseMargin is how much longer than an attempt and its recording a
// claimed message is leased: room for a slow start and for clocks of
// several keyd processes that differ a little.
const leaseMargin = 30 * time.Second

// Worker delivers the outbox. Each sweep fans new events out into messages
// and claims and starts as many due messages as free slots allow; Run
// sweeps whenever the store reports a commit, a delivery ends, or Wake is
// called (the scheduler calls Sweep every second, which picks up retries
// that became due and changes made by other processes).
//
// Several keyd processes on one database each run a worker. A worker
// leases each message it claims (store.DB.ClaimDueMessages) for longer
// than an attempt and its recording take, under an owner id of its own,
// and recording the attempt ends the lease; so a message is in flight in
// one process at a time. A worker that dies mid-delivery leaves the
// message leased until the lease runs out, or until a worker started on its
// host finds its process gone; then any worker sends it again, with the
// same message id and its tries and schedule as recorded: delivery is at
// least once.
//
// Messages to one endpoint start in the order of their events: one at a
// time, and a message starts only once every earlier one has been
// attempted (see store.DB.ClaimDueMessages). A message that failed goes to
// its retry schedule and does not hold back the ones behind it, so a retry
// can arrive after later events; receivers order by the payload's sequence.
type Worker struct {
	st     Store
	cfg    WorkerConfig
	client *http.Client
	log    *slog.Logger
	// owner names this worker in the leases it holds.
	owner string
	// leaseFor is how long a claimed message is leased: longer than an
	// attempt (the client's timeout) and its recording, with a margin.
	leaseFor time.Duration

	sweepMu sync.Mutex // one sweep at a time
	wake    chan struct{}

	// ctx is given to deliveries; cancel stops them.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inFlight map[string]bool // message ids
	// held are messages whose attempt could not be recorded, still leased,
	// by id: when to give the lease up so that they are sent again.
	held map[string]time.Time
	wg   sync.WaitGroup
}

// NewWorker makes a worker over st; nothing runs until Run or Sweep.
func NewWorker(st Store, cfg WorkerConfig) *Worker {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	w := &Worker{
		st:       st,
		cfg:      cfg,
		client:   cfg.Client,
		log:      cfg.Logger,
		owner:    newOwnerID(),
		wake:     make(chan struct{}, 1),
		inFlight: map[string]bool{},
		held:     map[string]time.Time{},
	}
	if w.client == nil {
		w.client = NewClient(cfg.AllowPrivate)
	}
	if w.client.Timeout <= 0 {
		c := *w.client // an attempt must end for its lease to mean anything
		c.Timeout = ClientTimeout
		w.client = &c
	}
	w.leaseFor = w.client.Timeout + recordTimeout + leaseMargin
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// newOwnerID names a worker in its leases: its host, process id namespace
// and process, for an operator reading the outbox and for a restarted
// process to tell that its predecessor is gone (see releaseDeadOwners), then
// random tokens of the process and of the worker, so that a worker never
// takes another's lease (or a restarted process with the same process id
// its predecessor's) for its own.
func newOwnerID() string {
	host, _ := os.Hostname()
	return ownerID(host, pidNamespace(), os.Getpid(), processToken, randomToken())
}

func ownerID(host, pidNS string, pid int, process, worker string) string {
	return fmt.Sprintf("%s/%s/%d/%s/%s", host, pidNS, pid, process, worker)
}

// processToken tells this process from another that had its process id.
var processToken = randomToken()

func randomToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pidNamespace names the namespace in which process ids are this process's
// (Linux; empty elsewhere): processes of one host in different containers
// may have the same id.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil || strings.Contains(ns, "/") {
		return ""
	}
	return ns
}

// ownerGone reports whether owner names a worker of a process that is gone:
// one of this host and process id namespace whose process is no longer
// running, or that had this process's id before it.
func (w *Worker) ownerGone(owner string) bool {
	o, me := strings.Split(owner, "/"), strings.Split(w.owner, "/")
	if len(o) != 5 || o[0] != me[0] || o[1] == "" || o[1] != me[1] {
		return false
	}
	pid, err := strconv.Atoi(o[2])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return o[3] != processToken // a worker of this process is not gone
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	err = p.Signal(syscall.Signal(0))
	return err != nil && !errors.Is(err, syscall.EPERM)
}

// releaseDeadOwners gives up the leases held by workers of processes of
// this host that are gone, such as this process's predecessor killed
// mid-delivery, so that their messages go out now rather than when the
// leases run out. Those of other hosts run out.
func (w *Worker) releaseDeadOwners(ctx context.Context) {
	owners, err := w.st.LeaseOwners(ctx)
	if err != nil {
		w.log.Warn("webhook leases of gone processes not checked; their messages go out once the leases run out", "error", err)
		return
	}
	for _, owner := range owners {
		if !w.ownerGone(owner) {
			continue
		}
		n, err := w.st.ReleaseOwner(ctx, owner)
		if err != nil {
			w.log.Warn("webhook leases of a gone process not released; its messages go out once the leases run out",
				"owner", owner, "error", err)
			continue
		}
		w.log.Info("released the webhook leases of a process that is gone", "owner", owner, "messages", n)
	}
}

// Wake makes Run sweep soon. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sweeps at once (messages left pending by an earlier run go out, also
// those it had claimed when it died: see releaseDeadOwners), then whenever
// woken, until ctx ends; then it lets deliveries in flight finish for
// StopGrace, cancels the rest and returns once all have returned, giving up
// the leases of the messages it did not attempt (and of those whose
// attempts it could not record), so that other processes send them at
// once.
func (w *Worker) Run(ctx context.Context) {
	defer w.stop()
	w.releaseDeadOwners(ctx)
	w.Wake()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.st.Changes():
		case <-w.wake:
		}
		if err := w.Sweep(ctx); err != nil && ctx.Err() == nil {
			w.log.Error("webhook sweep failed", "error", err)
		}
	}
}

func (w *Worker) stop() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.StopGrace):
		w.cancel()
		<-done
	}
	w.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	w.releaseHeld(ctx, true)
}

// Sweep fans new events out into messages, and claims and starts delivering
// the due ones that free slots allow. It does not wait for the deliveries.
func (w *Worker) Sweep(ctx context.Context) error {
	_, err := w.sweep(ctx)
	return err
}

// sweep is Sweep, reporting how many deliveries it started.
func (w *Worker) sweep(ctx context.Context) (int, error) {
	w.sweepMu.Lock()
	defer w.sweepMu.Unlock()
	if _, err := w.st.FanOut(ctx); err != nil {
		return 0, fmt.Errorf("webhooks: fan-out: %w", err)
	}
	w.releaseHeld(ctx, false)
	w.mu.Lock()
	free, closed := w.cfg.Workers-len(w.inFlight), w.closed
	w.mu.Unlock()
	if closed || free <= 0 {
		return 0, nil
	}
	// Only sweeps add to inFlight, so free slots stay free meanwhile.
	claimed, err := w.st.ClaimDueMessages(ctx, w.owner, w.cfg.Now(), w.leaseFor, free)
	if err != nil {
		return 0, fmt.Errorf("webhooks: claim due messages: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	started := 0
	var unsent []string
	for _, m := range claimed {
		delete(w.held, m.ID) // its lease ran out and it is ours again
		// A message still in flight here comes back only if its lease ran
		// out mid-attempt (a clock that jumped): the attempt under way
		// ends the new lease as well.
		if w.inFlight[m.ID] {
			continue
		}
		if w.closed {
			unsent = append(unsent, m.ID)
			continue
		}
		w.inFlight[m.ID] = true
		w.wg.Add(1)
		go w.deliver(m)
		started++
	}
	if len(unsent) > 0 {
		w.release(unsent...)
	}
	return started, nil
}

// releaseHeld gives up the leases of messages whose attempts could not be
// recorded, once they have waited unrecordedRetry (all of them if all is
// set), so that they are sent again. While the database cannot be written
// it fails, and the next sweep tries again; the leases run out meanwhile
// anyway.
func (w *Worker) releaseHeld(ctx context.Context, all bool) {
	now := w.cfg.Now()
	var ids []string
	w.mu.Lock()
	for id, at := range w.held {
		if all || !now.Before(at) {
			ids = append(ids, id)
		}
	}
	w.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := w.st.ReleaseMessages(ctx, w.owner, ids...); err != nil {
		w.log.Debug("webhook messages with unrecorded attempts not released yet", "message_ids", ids, "error", err)
		return
	}
	w.mu.Lock()
	for _, id := range ids {
		delete(w.held, id)
	}
	w.mu.Unlock()
}

// release gives up the leases of messages claimed but not attempted, so
// that another worker sends them at once rather than when the leases run
// out.
func (w *Worker) release(ids ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := w.st.ReleaseMessages(ctx, w.owner, ids...); err != nil {
		w.log.Warn("webhook messages not released; sent again once their lease runs out", "message_ids", ids,
			"lease", w.leaseFor, "error", err)
	}
}

// deliver makes one attempt and records it.
func (w *Worker) deliver(m store.OutboxMessage) {
	defer w.finished(m)
	at := w.cfg.Now()
	a := Deliver(w.ctx, w.client, Delivery{URL: m.URL, MsgID: m.ID, Body: m.Body, Secrets: m.Secrets}, at)
	if w.ctx.Err() != nil {
		// Stopped mid-attempt: not the receiver's fault, so no try is
		// used up, and the message is due again at once to another
		// worker or after a restart.
		w.release(m.ID)
		return
	}
	rec := store.AttemptRecord{
		MessageID: m.ID, Owner: w.owner, At: at, StatusCode: a.StatusCode, Duration: a.Duration,
		Response: a.Response, Error: a.Error, Outcome: string(a.Outcome),
	}
	switch a.Outcome {
	case OutcomeSuccess:
		rec.Delivered = true
	case OutcomeGone:
		rec.Gone = true
	case OutcomeRefused:
		// No NextAttemptAt: the message fails now.
	default:
		if next, ok := NextAttempt(m.Tries+1, at, a.RetryAfter, w.cfg.Rand); ok {
			rec.NextAttemptAt = &next
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := w.st.RecordAttempt(ctx, rec); err != nil {
		// The message stays pending as it was, and leased, and is sent
		// again, but not before unrecordedRetry: while the database
		// cannot be written (a full disk) it would otherwise be re-sent as
		// fast as the receiver answers.
		w.mu.Lock()
		w.held[m.ID] = w.cfg.Now().Add(unrecordedRetry)
		w.mu.Unlock()
		w.log.Error("webhook attempt not recorded; sending again later", "message_id", m.ID, "webhook_id", m.EndpointID,
			"retry_in", unrecordedRetry, "error", err)
		return
	}
	if w.cfg.OnAttempt != nil {
		w.cfg.OnAttempt(attemptOutcome(rec))
	}
	switch {
	case rec.Delivered:
		w.log.Debug("webhook delivered", "message_id", m.ID, "webhook_id", m.EndpointID, "type", m.EventType,
			"status", a.StatusCode, "duration", a.Duration)
	default:
		attrs := []any{"message_id", m.ID, "webhook_id", m.EndpointID, "type", m.EventType, "attempt", m.Tries + 1,
			"status", a.StatusCode, "error", a.Error}
		if a.Detail != "" {
			attrs = append(attrs, "detail", a.Detail) // the operator's to see, not the owner's
		}
		if rec.NextAttemptAt != nil {
			attrs = append(attrs, "next_attempt_at", rec.NextAttemptAt.UTC())
		} else {
			attrs = append(attrs, "gave_up", true)
		}
		w.log.Warn("webhook attempt failed", attrs...)
	}
}

// attemptOutcome names a recorded attempt's outcome for OnAttempt.
func attemptOutcome(rec store.AttemptRecord) string {
	switch {
	case rec.Delivered:
		return "delivered"
	case rec.Gone:
		return "gone"
	case rec.NextAttemptAt != nil:
		return "retrying"
	}
	return "failed"
}

func (w *Worker) finished(m store.OutboxMessage) {
	w.mu.Lock()
	delete(w.inFlight, m.ID)
	w.mu.Unlock()
	w.wg.Done()
	w.Wake() // a slot is free
}
