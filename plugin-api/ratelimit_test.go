package pluginapi

import (
	"testing"
	"time"
)

// Replicas sharing a database each enforce their share of an account's
// limit, so that together they allow what one machine would: the whole
// limit at once, then the limit a minute, however the balancer spreads the
// requests.
func TestRateLimitIsSharedAcrossReplicas(t *testing.T) {
	clock := &struct{ t time.Time }{time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	now := func() time.Time { return clock.t }
	const limit, replicas = 60, 3
	limiters := make([]*rateLimiter, replicas)
	for i := range limiters {
		limiters[i] = newRateLimiter(now)
	}
	allowed := func(requests int) (n int) {
		for i := range requests {
			if limiters[i%replicas].take(7, limit, replicas).allowed {
				n++
			}
		}
		return n
	}
	if n := allowed(200); n != limit {
		t.Fatalf("a burst spread over %d replicas: %d allowed, want the limit %d", replicas, n, limit)
	}
	clock.t = clock.t.Add(30 * time.Second)
	if n := allowed(200); n != limit/2 {
		t.Fatalf("half a minute later: %d allowed, want %d", n, limit/2)
	}
	// All on one replica: its share, never more.
	clock.t = clock.t.Add(time.Hour)
	n := 0
	for range 200 {
		if limiters[0].take(7, limit, replicas).allowed {
			n++
		}
	}
	if n != limit/replicas {
		t.Fatalf("a burst on one of %d replicas: %d allowed, want its share %d", replicas, n, limit/replicas)
	}
	// The headers speak of the whole limit.
	clock.t = clock.t.Add(time.Hour)
	v := limiters[1].take(7, limit, replicas)
	if v.limit != limit || v.remaining != limit-replicas {
		t.Fatalf("headers: limit %d, remaining %d; want %d and %d", v.limit, v.remaining, limit, limit-replicas)
	}
	// Alone, a replica has the whole limit.
	if v := newRateLimiter(now).take(7, limit, 1); v.remaining != limit-1 {
		t.Fatalf("one replica: remaining %d, want %d", v.remaining, limit-1)
	}
}
