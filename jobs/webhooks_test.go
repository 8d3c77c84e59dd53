package jobs

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

type fakePruner struct {
	now    time.Time
	before time.Time
	err    error
}

func (p *fakePruner) Now() time.Time { return p.now }

func (p *fakePruner) PruneWebhooks(_ context.Context, before time.Time) (int, int, error) {
	p.before = before
	return 3, 1, p.err
}

func TestPruneWebhooksKeepsTheRetention(t *testing.T) {
	p := &fakePruner{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	run := PruneWebhooks(p, 30*24*time.Hour, slog.New(slog.DiscardHandler))
	if err := run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC); !p.before.Equal(want) {
		t.Fatalf("pruned before %v, want %v", p.before, want)
	}
	p.err = errors.New("disk full")
	if err := run(context.Background()); !errors.Is(err, p.err) {
		t.Fatalf("error %v not reported", err)
	}
}

type fakeSweeper struct{ runs int }

func (s *fakeSweeper) Sweep(context.Context) error { s.runs++; return nil }

func TestSweepWebhooksRunsASweep(t *testing.T) {
	s := &fakeSweeper{}
	if err := SweepWebhooks(s)(context.Background()); err != nil || s.runs != 1 {
		t.Fatalf("runs %d, err %v", s.runs, err)
	}
}
