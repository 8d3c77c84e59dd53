package webhooks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"keyd/store"
)

// Store is what the worker needs from keyd's store.
type Store interface {
	// Changes signals after a local commit that appended events or
	// messages to send.
	Changes() <-chan struct{}
	FanOut(ctx context.Context) (int, error)
	DueMessages(ctx context.Context, now time.Time, limit int) ([]store.OutboxMessage, error)
	RecordAttempt(ctx context.Context, rec store.AttemptRecord) error
}

// WorkerConfig tunes a Worker. Zero values mean the defaults.
type WorkerConfig struct {
	// Client makes the requests; nil means NewClient(AllowPrivate).
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

// Worker delivers the outbox. Each sweep fans new events out into messages
// and starts every due message that a free slot allows; Run sweeps whenever
// the store reports a commit, a delivery ends, or Wake is called (the
// scheduler calls Sweep every second, which picks up retries that became
// due and changes made by other processes). The worker keeps track of the
// messages it is sending in memory: after a crash nothing is in flight and
// every pending message is due again, so delivery is at least once.
//
// Messages to one endpoint start in the order of their events: one at a
// time, and a message starts only once every earlier one has been
// attempted (see store.DB.DueMessages). A message that failed goes to its
// retry schedule and does not hold back the ones behind it, so a retry can
// arrive after later events; receivers order by the payload's sequence.
type Worker struct {
	st     Store
	cfg    WorkerConfig
	client *http.Client
	log    *slog.Logger

	sweepMu sync.Mutex // one sweep at a time
	wake    chan struct{}

	// ctx is given to deliveries; cancel stops them.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inFlight map[string]bool      // message ids
	held     map[string]time.Time // message id -> not before: attempts that could not be recorded
	busy     map[string]bool      // endpoint ids with a message in flight
	wg       sync.WaitGroup
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
		wake:     make(chan struct{}, 1),
		inFlight: map[string]bool{},
		held:     map[string]time.Time{},
		busy:     map[string]bool{},
	}
	if w.client == nil {
		w.client = NewClient(cfg.AllowPrivate)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// Wake makes Run sweep soon. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sweeps at once (messages left pending by an earlier run go out), then
// whenever woken, until ctx ends; then it lets deliveries in flight finish
// for StopGrace, cancels the rest and returns once all have returned.
func (w *Worker) Run(ctx context.Context) {
	defer w.stop()
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
}

// Sweep fans new events out into messages and starts delivering the due
// ones that free slots allow. It does not wait for the deliveries.
func (w *Worker) Sweep(ctx context.Context) error {
	w.sweepMu.Lock()
	defer w.sweepMu.Unlock()
	if _, err := w.st.FanOut(ctx); err != nil {
		return fmt.Errorf("webhooks: fan-out: %w", err)
	}
	w.mu.Lock()
	busy, closed := len(w.inFlight), w.closed
	w.mu.Unlock()
	if closed || busy >= w.cfg.Workers {
		return nil
	}
	// An endpoint's message in flight is still pending and is what the
	// store names as its next, so ask for enough to find free slots' worth
	// of others.
	due, err := w.st.DueMessages(ctx, w.cfg.Now(), w.cfg.Workers+busy)
	if err != nil {
		return fmt.Errorf("webhooks: due messages: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Now()
	for id, until := range w.held {
		if !now.Before(until) {
			delete(w.held, id)
		}
	}
	for _, m := range due {
		if w.closed || len(w.inFlight) >= w.cfg.Workers {
			break
		}
		// m is the endpoint's next message; while an earlier one is in
		// flight, or held after an unrecorded attempt, m waits for it.
		if _, held := w.held[m.ID]; held || w.inFlight[m.ID] || w.busy[m.EndpointID] {
			continue
		}
		w.inFlight[m.ID] = true
		w.busy[m.EndpointID] = true
		w.wg.Add(1)
		go w.deliver(m)
	}
	return nil
}

// deliver makes one attempt and records it.
func (w *Worker) deliver(m store.OutboxMessage) {
	defer w.finished(m)
	at := w.cfg.Now()
	a := Deliver(w.ctx, w.client, Delivery{URL: m.URL, MsgID: m.ID, Body: m.Body, Secrets: m.Secrets}, at)
	if w.ctx.Err() != nil {
		return // stopped mid-attempt: not the receiver's fault, try again after a restart
	}
	rec := store.AttemptRecord{
		MessageID: m.ID, At: at, StatusCode: a.StatusCode, Duration: a.Duration,
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.st.RecordAttempt(ctx, rec); err != nil {
		// The message stays pending as it was and is sent again, but not
		// before unrecordedRetry: while the database cannot be written (a
		// full disk) it would otherwise be re-sent as fast as the receiver
		// answers.
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
	// A sweep that read the message as due before its attempt was recorded
	// must still find it in flight, so it is let go of between sweeps.
	w.sweepMu.Lock()
	defer w.sweepMu.Unlock()
	w.mu.Lock()
	delete(w.inFlight, m.ID)
	delete(w.busy, m.EndpointID)
	w.mu.Unlock()
	w.wg.Done()
	w.Wake() // a slot is free
}
