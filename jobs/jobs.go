// Package jobs runs keyd's scheduled work. Each job is a plain
// func(ctx) error that tests call directly; the Scheduler only decides when.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Job is one piece of scheduled work. Run must be idempotent: a run that
// overlaps another, repeats or is killed midway does no harm.
type Job struct {
	Name     string
	Schedule string // a cron spec ("*/5 * * * *") or a descriptor ("@every 10s")
	Run      func(ctx context.Context) error
	// PerReplica runs the job on every replica sharing a database (each
	// flushes its own counters); other jobs run on one replica per schedule
	// (see Claim).
	PerReplica bool
}

// Claim reports whether this process should run the job name now, which
// is scheduled every interval: false when another replica of a shared
// database has run it for this schedule already (store.DB.ClaimJobRun).
type Claim func(ctx context.Context, name string, interval time.Duration) (bool, error)

// Status is what the operator sees of a job.
type Status struct {
	Name         string     `json:"name"`
	Schedule     string     `json:"schedule"`
	LastRun      *time.Time `json:"last_run"`
	LastDuration string     `json:"last_duration"`
	LastError    string     `json:"last_error"`
	NextRun      *time.Time `json:"next_run"`
	Runs         int64      `json:"runs"`
	// Skipped counts the runs left to another replica that had claimed them.
	Skipped  int64 `json:"skipped"`
	Failures int64 `json:"failures"`
}

// Scheduler runs jobs on their schedules, never two runs of one job at once,
// and survives a job's panic (recorded as a failure).
type Scheduler struct {
	cron *cron.Cron
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	claim Claim // nil: every run is this process's

	mu   sync.Mutex
	jobs []*entry
}

type entry struct {
	job      Job
	id       cron.EntryID
	interval time.Duration // between two runs, for Claim
	status   Status
}

// WithClaim makes each run of a job that is not PerReplica ask claim first.
// Call it before Start.
func (s *Scheduler) WithClaim(claim Claim) { s.claim = claim }

// New parses every job's schedule; nothing runs until Start.
func New(log *slog.Logger, jobs ...Job) (*Scheduler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl := cronLogger{log}
	s := &Scheduler{
		cron: cron.New(
			cron.WithLocation(time.UTC),
			cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)),
			cron.WithLogger(cl),
		),
		log: log,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, j := range jobs {
		sched, err := cron.ParseStandard(j.Schedule)
		if err != nil {
			return nil, fmt.Errorf("jobs: schedule %q of %s: %w", j.Schedule, j.Name, err)
		}
		next := sched.Next(time.Now())
		e := &entry{job: j, interval: sched.Next(next).Sub(next), status: Status{Name: j.Name, Schedule: j.Schedule}}
		id := s.cron.Schedule(sched, cron.FuncJob(func() { s.runEntry(e) }))
		e.id = id
		s.jobs = append(s.jobs, e)
	}
	return s, nil
}

func (s *Scheduler) runEntry(e *entry) {
	if s.claim != nil && !e.job.PerReplica {
		mine, err := s.claim(s.ctx, e.job.Name, e.interval)
		if err != nil {
			s.log.Error("job not run: claiming it failed", "job", e.job.Name, "error", err)
			return
		}
		if !mine {
			s.mu.Lock()
			e.status.Skipped++
			s.mu.Unlock()
			s.log.Debug("job run by another replica", "job", e.job.Name)
			return
		}
	}
	start := time.Now()
	err := runRecovering(s.ctx, e.job.Run)
	took := time.Since(start)

	s.mu.Lock()
	defer s.mu.Unlock()
	started := start.UTC()
	e.status.LastRun = &started
	e.status.LastDuration = took.Round(time.Microsecond).String()
	e.status.Runs++
	e.status.LastError = ""
	if err != nil {
		e.status.Failures++
		e.status.LastError = err.Error()
		s.log.Error("job failed", "job", e.job.Name, "error", err, "duration", took)
		return
	}
	s.log.Debug("job ran", "job", e.job.Name, "duration", took)
}

// runRecovering runs a job, turning a panic into an error. It must happen
// here, inside cron's SkipIfStillRunning: that wrapper (v3.0.1) does not give
// back its token when a job panics, so one panic would stop the job for good.
func runRecovering(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return run(ctx)
}

// Start begins running jobs on their schedules.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop stops scheduling, cancels running jobs' context after grace, and waits
// for them to return.
func (s *Scheduler) Stop(grace time.Duration) {
	done := s.cron.Stop()
	select {
	case <-done.Done():
	case <-time.After(grace):
		s.cancel()
		<-done.Done()
	}
	s.cancel()
}

// Statuses reports every job, in the order they were given.
func (s *Scheduler) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.jobs))
	for _, e := range s.jobs {
		st := e.status
		if next := s.cron.Entry(e.id).Next; !next.IsZero() {
			n := next.UTC()
			st.NextRun = &n
		}
		out = append(out, st)
	}
	return out
}

// cronLogger routes cron's own messages (a recovered panic, a skipped run)
// to slog.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "error", err)...)
}
