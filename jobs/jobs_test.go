package jobs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSchedulerRecordsRunsErrorsAndPanics(t *testing.T) {
	var ok, failing, panicking atomic.Int64
	s, err := New(nil,
		Job{Name: "ok", Schedule: "@every 1s", Run: func(context.Context) error { ok.Add(1); return nil }},
		Job{Name: "failing", Schedule: "@every 1s", Run: func(context.Context) error { failing.Add(1); return errors.New("disk on fire") }},
		Job{Name: "panicking", Schedule: "@every 1s", Run: func(context.Context) error { panicking.Add(1); panic("boom") }},
	)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Stop(time.Second)
	waitFor(t, "two runs of each job", func() bool { return ok.Load() >= 2 && failing.Load() >= 2 && panicking.Load() >= 2 })

	byName := map[string]Status{}
	for _, st := range s.Statuses() {
		byName[st.Name] = st
	}
	if st := byName["ok"]; st.Runs < 2 || st.Failures != 0 || st.LastRun == nil || st.NextRun == nil || st.LastError != "" || st.Schedule != "@every 1s" {
		t.Errorf("ok job status: %+v", st)
	}
	if st := byName["failing"]; st.Failures < 2 || st.LastError != "disk on fire" {
		t.Errorf("failing job status: %+v", st)
	}
	// A panic is recovered and recorded, and the job keeps its schedule.
	if st := byName["panicking"]; st.Failures < 2 || st.LastError != "panic: boom" {
		t.Errorf("panicking job status: %+v", st)
	}
}

func TestSchedulerNeverOverlapsAJob(t *testing.T) {
	var running, maxRunning, runs atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	s, err := New(nil, Job{Name: "slow", Schedule: "@every 1s", Run: func(ctx context.Context) error {
		n := running.Add(1)
		defer running.Add(-1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		runs.Add(1)
		<-release // held over several ticks
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	waitFor(t, "the first run", func() bool { return runs.Load() == 1 })
	time.Sleep(2500 * time.Millisecond) // two more ticks while the first run is held
	once.Do(func() { close(release) })
	s.Stop(5 * time.Second)
	if maxRunning.Load() != 1 {
		t.Fatalf("%d runs at once, want 1", maxRunning.Load())
	}
}

func TestBadScheduleIsRefused(t *testing.T) {
	if _, err := New(nil, Job{Name: "x", Schedule: "every now and then", Run: func(context.Context) error { return nil }}); err == nil {
		t.Fatal("a bad schedule was accepted")
	}
}

func TestStopCancelsAJobThatOutlivesTheGrace(t *testing.T) {
	started := make(chan struct{})
	var cancelled atomic.Bool
	s, err := New(nil, Job{Name: "stuck", Schedule: "@every 1s", Run: func(ctx context.Context) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		cancelled.Store(true)
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	<-started
	s.Stop(100 * time.Millisecond)
	if !cancelled.Load() {
		t.Fatal("Stop returned while the job still ran")
	}
}
