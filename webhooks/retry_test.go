package webhooks

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	want := []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if MaxAttempts != len(want) {
		t.Fatalf("MaxAttempts = %d, want %d", MaxAttempts, len(want))
	}
	var total time.Duration
	for i, w := range want {
		d, ok := Delay(i + 1)
		if !ok || d != w {
			t.Errorf("Delay(%d) = %v, %v; want %v", i+1, d, ok, w)
		}
		total += d
	}
	if total < 24*time.Hour || total > 30*time.Hour {
		t.Errorf("schedule spans %v, want about a day", total)
	}
	for _, n := range []int{-1, 0, MaxAttempts + 1} {
		if _, ok := Delay(n); ok {
			t.Errorf("Delay(%d) ok", n)
		}
	}
}

func TestNextAttempt(t *testing.T) {
	failed := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	exact := func() float64 { return 0.5 }
	low := func() float64 { return 0 }
	high := func() float64 { return 0.999999999 }
	tests := []struct {
		name       string
		n          int
		retryAfter time.Duration
		rnd        func() float64
		want       time.Duration // after failed; -1 = exhausted
	}{
		{"after attempt 1", 1, 0, exact, 5 * time.Second},
		{"after attempt 2", 2, 0, exact, 5 * time.Minute},
		{"after attempt 3", 3, 0, exact, 30 * time.Minute},
		{"after attempt 4", 4, 0, exact, 2 * time.Hour},
		{"after attempt 5", 5, 0, exact, 5 * time.Hour},
		{"after attempt 6", 6, 0, exact, 10 * time.Hour},
		{"after attempt 7", 7, 0, exact, 10 * time.Hour},
		{"after attempt 8", 8, 0, exact, -1},
		{"attempt 0", 0, 0, exact, -1},
		{"negative attempt", -3, 0, exact, -1},
		{"jitter low", 3, 0, low, 24 * time.Minute},
		{"jitter high", 3, 0, high, 36 * time.Minute},
		{"jitter out of range low", 3, 0, func() float64 { return -5 }, 24 * time.Minute},
		{"jitter out of range high", 3, 0, func() float64 { return 7 }, 36 * time.Minute},
		{"retry-after longer than schedule", 1, time.Minute, exact, time.Minute},
		{"retry-after shorter than schedule", 3, time.Minute, exact, 30 * time.Minute},
		{"retry-after capped", 2, 72 * time.Hour, exact, MaxRetryAfter},
		{"retry-after does not add attempts", 8, time.Minute, exact, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, ok := NextAttempt(tt.n, failed, tt.retryAfter, tt.rnd)
			if tt.want < 0 {
				if ok {
					t.Fatalf("NextAttempt = %v, want exhausted", next)
				}
				return
			}
			if !ok {
				t.Fatal("NextAttempt exhausted")
			}
			// High jitter is just under +20%.
			if got := next.Sub(failed); got.Round(time.Second) != tt.want {
				t.Fatalf("next attempt after %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNextAttemptDefaultJitter(t *testing.T) {
	failed := time.Unix(1_700_000_000, 0)
	seen := map[time.Time]bool{}
	for range 200 {
		next, ok := NextAttempt(4, failed, 0, nil)
		if !ok {
			t.Fatal("exhausted")
		}
		d := next.Sub(failed)
		if d < 96*time.Minute || d > 144*time.Minute {
			t.Fatalf("delay %v outside 2h ± 20%%", d)
		}
		seen[next] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 200 draws: no jitter", len(seen))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{" 30 ", 30 * time.Second, true},
		{"86400", 24 * time.Hour, true},
		{"86401", MaxRetryAfter, true},
		{"99999999999999999999999", MaxRetryAfter, true},
		{"Thu, 01 Jan 2026 12:10:00 GMT", 10 * time.Minute, true},
		{"Thursday, 01-Jan-26 12:00:30 GMT", 30 * time.Second, true},
		{"Thu Jan  1 12:01:00 2026", time.Minute, true},
		{"Thu, 01 Jan 2026 11:00:00 GMT", 0, true},
		{"Sat, 01 Jan 2028 12:00:00 GMT", MaxRetryAfter, true},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"12 34", 0, false},
		{"soon", 0, false},
		{"2026-01-01T12:10:00Z", 0, false},
	}
	for _, tt := range tests {
		d, ok := ParseRetryAfter(tt.v, now)
		if d != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.v, d, ok, tt.want, tt.ok)
		}
	}
}
