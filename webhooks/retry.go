package webhooks

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// schedule is the retry schedule, the one place it is written down:
// schedule[n-1] is the delay before attempt n, counted from the failure of
// attempt n-1 (attempt 1 goes out as soon as the event is committed). Eight
// attempts span about 27.5 hours before a message is given up.
var schedule = [...]time.Duration{
	0,
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// MaxAttempts is how many attempts a message gets before it is marked failed.
const MaxAttempts = len(schedule)

// Jitter is the relative spread applied to every scheduled delay, so that
// messages that failed together (a receiver's outage) do not all come back
// in the same second.
const Jitter = 0.2

// MaxRetryAfter caps a receiver's Retry-After, so that a receiver cannot park
// a message for longer than the whole schedule would take.
const MaxRetryAfter = 24 * time.Hour

// Delay returns the scheduled delay before attempt n (1-based) without
// jitter, and false when there is no attempt n.
func Delay(n int) (time.Duration, bool) {
	if n < 1 || n > MaxAttempts {
		return 0, false
	}
	return schedule[n-1], true
}

// NextAttempt returns when attempt n+1 of a message is due, given that
// attempt n failed at failedAt; ok is false when n was the last attempt (the
// message is exhausted).
//
// The scheduled delay is spread by ±[Jitter] using rnd, which must return a
// number in [0, 1) (0 gives -20%, 0.5 the exact delay); nil means
// math/rand/v2.Float64. Tests pass a constant.
//
// retryAfter is the delay a receiver asked for with Retry-After on a 429 or
// 503 (see [ParseRetryAfter]), or 0. It is honoured as a lower bound: the
// next attempt comes no sooner than the receiver asked, and no sooner than
// the schedule says, so a receiver cannot speed retries up; it is capped at
// [MaxRetryAfter]. It does not grant extra attempts.
func NextAttempt(n int, failedAt time.Time, retryAfter time.Duration, rnd func() float64) (next time.Time, ok bool) {
	d, ok := Delay(n + 1)
	if !ok || n < 1 {
		return time.Time{}, false
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	r := min(max(rnd(), 0), 1)
	d = time.Duration(float64(d) * (1 - Jitter + 2*Jitter*r))
	if retryAfter > d {
		d = min(retryAfter, MaxRetryAfter)
	}
	return failedAt.Add(d), true
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP-date (RFC 9110, 10.2.3), relative to now. A date in the past gives 0;
// anything beyond [MaxRetryAfter] gives MaxRetryAfter. ok is false for an
// empty or malformed value.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return 0, false
			}
		}
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // only overflow can fail here
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}
