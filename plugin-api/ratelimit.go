package pluginapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// rateLimiter is a token bucket per account, shared by all the account's
// keys: a plan's rate_limit_per_minute fills it at limit/60 tokens a second
// up to limit. It lives in memory. With several replicas sharing a database
// each enforces its share, limit/n for n live replicas (take), so that
// across them an account is allowed no more than on one machine: limit at
// once, then limit a minute. A load balancer that spreads an account's
// requests unevenly makes the account meet its limit sooner, never later.
// Buckets
// are plain values keyed by the account's number (KeyView.AccountNum): with
// hundreds of thousands of busy accounts there is nothing for the garbage
// collector to scan and no string to hash.
type rateLimiter struct {
	now    func() time.Time
	shards [64]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[uint64]bucket
	calls   int
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds
}

func newRateLimiter(now func() time.Time) *rateLimiter {
	l := &rateLimiter{now: now}
	for i := range l.shards {
		l.shards[i].buckets = map[uint64]bucket{}
	}
	return l
}

// verdict is one decision, with what the headers say.
type verdict struct {
	allowed    bool
	limit      int
	remaining  int
	reset      time.Duration // until the bucket is full again
	retryAfter time.Duration // until one request is allowed, when refused
}

// take spends one token of the account's bucket (limit per minute; 0 means
// unlimited, which always allows) on this replica, one of replicas
// enforcing the limit together. The headers speak of the whole limit:
// remaining is this replica's share left, scaled up.
func (l *rateLimiter) take(account uint64, limit, replicas int) verdict {
	if limit <= 0 {
		return verdict{allowed: true}
	}
	now := l.now().UnixNano()
	share := float64(limit) / float64(max(replicas, 1))
	rate := share / 60 // tokens per second
	// Account numbers are random, so their low bits spread the shards.
	sh := &l.shards[account%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.calls++
	if sh.calls%4096 == 0 {
		sh.forgetFull(now)
	}
	b, ok := sh.buckets[account]
	if !ok {
		b = bucket{tokens: share, last: now}
	}
	if elapsed := float64(now-b.last) / 1e9; elapsed > 0 {
		b.tokens = math.Min(share, b.tokens+elapsed*rate)
		b.last = now
	}
	b.tokens = math.Min(b.tokens, share) // the plan may have shrunk, or replicas joined
	v := verdict{limit: limit}
	if b.tokens >= 1 {
		b.tokens--
		v.allowed = true
	} else {
		v.retryAfter = seconds((1 - b.tokens) / rate)
	}
	sh.buckets[account] = b
	v.remaining = int(b.tokens * float64(limit) / share)
	v.reset = seconds((share - b.tokens) / rate)
	return v
}

// forgetFull drops buckets that have refilled completely: they hold nothing
// a new bucket would not. Rates differ per plan; a generous idle time is used.
func (sh *limiterShard) forgetFull(now int64) {
	for k, b := range sh.buckets {
		if time.Duration(now-b.last) > 2*time.Minute {
			delete(sh.buckets, k)
		}
	}
}

func seconds(s float64) time.Duration { return time.Duration(math.Ceil(s)) * time.Second }

// setHeaders writes the X-RateLimit-* headers (and Retry-After when refused).
// Unlimited plans get none. It runs on every validation, so the three
// numbers share one string and the three values one slice, and the header
// names are written in canonical form (what Header.Set would make of them).
func (v verdict) setHeaders(c *gin.Context) {
	if v.limit == 0 {
		return
	}
	var buf [3 * 20]byte
	b := strconv.AppendInt(buf[:0], int64(v.limit), 10)
	endLimit := len(b)
	b = strconv.AppendInt(b, int64(v.remaining), 10)
	endRemaining := len(b)
	b = strconv.AppendInt(b, int64(v.reset/time.Second), 10)
	numbers := string(b)
	values := []string{numbers[:endLimit], numbers[endLimit:endRemaining], numbers[endRemaining:]}
	h := c.Writer.Header()
	h["X-Ratelimit-Limit"] = values[0:1:1]
	h["X-Ratelimit-Remaining"] = values[1:2:2]
	h["X-Ratelimit-Reset"] = values[2:3:3]
	if !v.allowed {
		h.Set("Retry-After", strconv.Itoa(max(1, int(v.retryAfter/time.Second))))
	}
}

func rateLimited(v verdict) *apiError {
	return newError(http.StatusTooManyRequests, codeRateLimited,
		"the account's rate limit of %d requests a minute is spent; retry in %d s", v.limit, max(1, int(v.retryAfter/time.Second)))
}
