package pluginapi

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// What the request log writes, and why:
//
//   - At info (the default) no line for a request that went as expected. A
//     keyd answering tens of thousands of validations a second would
//     otherwise write gigabytes a day that nobody reads, and formatting
//     and writing a line cost more CPU than the validation itself.
//   - Instead, once a minute, one summary line: requests by route and
//     status, with each route's p50, p99 and longest duration.
//   - A line for each request worth an operator's attention: every 5xx (at
//     error), every request slower than the slow threshold (at warn), and
//     every 4xx of the account owners' and the operator's API (at info:
//     little traffic, and each one is someone's failed attempt to change an
//     account, or someone guessing keys or the admin token). 4xx answers of
//     the routes plugins call (validate, usage, api-status.php: unknown and
//     revoked keys, spent credits) and of paths no route matches are normal
//     traffic; they are counted in the summary only.
//   - At debug, a line for every request.
//
// Counting costs a few atomic additions per request; nothing is formatted on
// a request's path unless it gets a line of its own. The log's writer is
// expected not to block (keyd serve's drops lines when its output is slow,
// see cmd/keyd), so a line never holds up an answer either.

// RequestLogConfig sets up a RequestLog.
type RequestLogConfig struct {
	// Slow is the duration from which a request is logged at warn; 0 means
	// one second.
	Slow time.Duration
	// Now is the clock of the summary's interval; nil means time.Now.
	// Durations of requests are measured on the monotonic clock.
	Now func() time.Time
	// Dropped, when set, is the count of log lines dropped so far because
	// the log's output was slow; the summary reports how many it grew by.
	Dropped func() uint64
}

// RequestLog counts requests for the summary line and logs the requests
// worth a line of their own. Make one with NewRequestLog and hand it to New
// in Config.RequestLog, then call Run to write the summary every minute.
type RequestLog struct {
	log        *slog.Logger
	now        func() time.Time
	slow       time.Duration
	dropped    func() uint64
	everyLine  bool // debug: every request gets a line
	idPrefix   uint64
	idSequence atomic.Uint64
	slowCount  atomic.Uint64 // requests of at least slow since the last summary

	routes atomic.Pointer[map[routeKey]*routeStats] // set once by New

	mu          sync.Mutex // the summary's own state below
	since       time.Time
	droppedSeen uint64
	oddStatuses map[oddStatus]uint64 // statuses outside countedStatuses (rare)
}

type oddStatus struct {
	r      *routeStats
	status int
}

// routeStats are one route's counts since the last summary.
type routeStats struct {
	method, route string
	// quiet routes are the ones plugins call and paths no route matched:
	// their 4xx answers are normal traffic, counted but not logged at info.
	quiet    bool
	byStatus [len(countedStatuses)]atomic.Uint64
	duration [durationBuckets]atomic.Uint64
	maxMicro atomic.Uint64
}

// NewRequestLog makes a request log writing to log.
func NewRequestLog(log *slog.Logger, cfg RequestLogConfig) *RequestLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rl := &RequestLog{log: log, now: cfg.Now, slow: cfg.Slow, dropped: cfg.Dropped, oddStatuses: map[oddStatus]uint64{}}
	if rl.now == nil {
		rl.now = time.Now
	}
	if rl.slow <= 0 {
		rl.slow = time.Second
	}
	// Decided once: slog's level of keyd's logger does not change while it runs.
	rl.everyLine = log.Enabled(context.Background(), slog.LevelDebug)
	var seed [8]byte
	rand.Read(seed[:])
	rl.idPrefix = binary.LittleEndian.Uint64(seed[:])
	rl.since = rl.now()
	if rl.dropped != nil {
		rl.droppedSeen = rl.dropped()
	}
	return rl
}

// quietRoutes answer plugins; their 4xx are expected answers.
var quietRoutes = map[string]bool{"/v1/validate": true, "/v1/usage": true,
	"/v2/api-status.php": true, "/v2/api-status": true, unmatchedRoute: true}

// setRoutes prepares the counters of a router's routes. The first router a
// RequestLog is given keeps it.
func (rl *RequestLog) setRoutes(routes gin.RoutesInfo) {
	m := map[routeKey]*routeStats{}
	add := func(method, route string) {
		m[routeKey{method, route}] = &routeStats{method: method, route: route, quiet: quietRoutes[route]}
	}
	for _, r := range routes {
		add(r.Method, r.Path)
	}
	for _, method := range append(standardMethods, "OTHER") {
		m[routeKey{method, ""}] = &routeStats{method: method, route: unmatchedRoute, quiet: true}
	}
	rl.routes.CompareAndSwap(nil, &m)
}

// headerRequestID is X-Request-ID in Go's canonical spelling, so that
// reading and writing it need no conversion.
const headerRequestID = "X-Request-Id"

// requestID echoes a well-formed X-Request-ID (sharing the request's value,
// no copy) or makes one: a per-process random start plus a sequence number,
// unique and cheaper than reading the system's random source per request.
func (rl *RequestLog) requestID(c *gin.Context) string {
	if v := c.Request.Header[headerRequestID]; len(v) == 1 && validRequestID(v[0]) {
		c.Writer.Header()[headerRequestID] = v
		return v[0]
	}
	var raw [8]byte
	var b [16]byte
	binary.BigEndian.PutUint64(raw[:], rl.idPrefix+rl.idSequence.Add(1))
	hex.Encode(b[:], raw[:])
	id := string(b[:])
	c.Writer.Header()[headerRequestID] = []string{id}
	return id
}

// requestLog is the middleware: it gives each request an id, counts it when
// it ends and logs it when it deserves a line. It never logs a key, a token
// or a query string: only the key's hint.
func (s *server) requestLog(c *gin.Context) {
	start := time.Now()
	rl := s.requestLogger
	id := rl.requestID(c)
	w := loggedWriters.Get().(*loggedWriter)
	w.ResponseWriter = c.Writer
	c.Writer = w
	c.Next()
	c.Writer = w.ResponseWriter
	hint := w.hint
	*w = loggedWriter{}
	loggedWriters.Put(w)

	took := time.Since(start)
	if s.requestMetrics != nil {
		s.requestMetrics.observe(c, start)
	}
	status := c.Writer.Status()
	r := rl.count(c, status, took)

	var level slog.Level
	msg := "request"
	switch {
	case status >= 500:
		level, msg = slog.LevelError, "request failed"
	case took >= rl.slow:
		rl.slowCount.Add(1)
		level, msg = slog.LevelWarn, "slow request"
	case status >= 400 && (r == nil || !r.quiet):
		level = slog.LevelInfo
	case rl.everyLine:
		level = slog.LevelDebug
	default:
		return
	}
	if !rl.log.Enabled(c.Request.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", id),
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", took),
		slog.String("ip", c.ClientIP()),
	}
	if hint != "" {
		attrs = append(attrs, slog.String("key_hint", hint))
	}
	if detail := c.GetString(ctxErrorDetail); detail != "" {
		attrs = append(attrs, slog.String("error", detail))
	}
	rl.log.LogAttrs(c.Request.Context(), level, msg, attrs...)
}

// loggedWriter is the response writer of a request while the request log
// follows it. It carries the hint of the key the request used from the
// handler to the log, for the line the log may write, which it does for few
// requests: kept in gin's per-request map instead, the hint cost validate
// as much as looking the key up (the map is made anew for every request),
// about 2% of its CPU, where taking a pooled writer costs next to nothing.
type loggedWriter struct {
	gin.ResponseWriter
	hint string
}

var loggedWriters = sync.Pool{New: func() any { return new(loggedWriter) }}

// setKeyHint notes the hint of the key a request used, for the request log.
func setKeyHint(c *gin.Context, hint string) {
	if w, ok := c.Writer.(*loggedWriter); ok {
		w.hint = hint
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// count adds a finished request to its route's counts. c.FullPath() is the
// matched route pattern, empty when none matched.
func (rl *RequestLog) count(c *gin.Context, status int, took time.Duration) *routeStats {
	routes := rl.routes.Load()
	if routes == nil {
		return nil
	}
	r := (*routes)[routeKey{c.Request.Method, c.FullPath()}]
	if r == nil { // no route matched, and the method is not a standard one
		r = (*routes)[routeKey{"OTHER", ""}]
	}
	if slot := statusSlot(status); slot >= 0 {
		r.byStatus[slot].Add(1)
	} else {
		rl.mu.Lock()
		rl.oddStatuses[oddStatus{r, status}]++
		rl.mu.Unlock()
	}
	micro := uint64(max(took, 0) / time.Microsecond)
	r.duration[durationBucket(micro)].Add(1)
	for {
		old := r.maxMicro.Load()
		if micro <= old || r.maxMicro.CompareAndSwap(old, micro) {
			break
		}
	}
	return r
}

// Durations are counted in buckets of microseconds, four to each power of
// two, so a percentile read from them is at most a quarter too high.
const durationBuckets = 4 * 40

func durationBucket(micro uint64) int {
	if micro < 4 {
		return int(micro)
	}
	e := bits.Len64(micro) - 1 // >= 2
	i := 4*(e-1) + int(micro>>(e-2)&3)
	return min(i, durationBuckets-1)
}

// bucketUpper is the largest duration bucket i holds.
func bucketUpper(i int) time.Duration {
	if i < 4 {
		return time.Duration(i) * time.Microsecond
	}
	e, sub := i/4+1, uint64(i%4)
	return time.Duration((4+sub+1)<<(e-2)-1) * time.Microsecond
}

// Run writes the summary every interval until ctx ends, then once more for
// the last part.
func (rl *RequestLog) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rl.Summarize()
			return
		case <-t.C:
			rl.Summarize()
		}
	}
}

// Summarize logs the summary line of the requests since the last one (at
// info), and starts the next interval. It logs nothing when there were no
// requests and no dropped lines.
//
//	level=INFO msg=requests interval=1m0s total=2400312 5xx=0 slow=0 log_lines_dropped=0
//	  "POST /v1/validate"="200:1800210 401:600100 p50=96µs p99=447µs max=12.3ms" ...
func (rl *RequestLog) Summarize() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	now := rl.now()
	interval := now.Sub(rl.since)
	rl.since = now
	var dropped uint64
	if rl.dropped != nil {
		n := rl.dropped()
		dropped, rl.droppedSeen = n-rl.droppedSeen, n
	}
	odd := rl.oddStatuses
	rl.oddStatuses = map[oddStatus]uint64{}

	routes := rl.routes.Load()
	if routes == nil {
		return
	}
	var total, failed uint64
	var lines []slog.Attr
	for _, r := range sortedRoutes(*routes) {
		var counts []string
		var n uint64
		for i, status := range countedStatuses {
			if k := r.byStatus[i].Swap(0); k > 0 {
				counts = append(counts, strconv.Itoa(status)+":"+strconv.FormatUint(k, 10))
				n += k
				if status >= 500 {
					failed += k
				}
			}
		}
		var oddCounts []string
		for o, k := range odd {
			if o.r == r {
				oddCounts = append(oddCounts, strconv.Itoa(o.status)+":"+strconv.FormatUint(k, 10))
				n += k
				if o.status >= 500 {
					failed += k
				}
			}
		}
		slices.Sort(oddCounts) // map order is random; the line's is not
		counts = append(counts, oddCounts...)
		var hist [durationBuckets]uint64
		for i := range hist {
			hist[i] = r.duration[i].Swap(0)
		}
		longest := time.Duration(r.maxMicro.Swap(0)) * time.Microsecond
		if n == 0 {
			continue
		}
		total += n
		// A bucket's upper bound may pass the longest duration it holds.
		p50, p99 := min(percentile(&hist, n, 0.50), longest), min(percentile(&hist, n, 0.99), longest)
		lines = append(lines, slog.String(r.method+" "+r.route, fmt.Sprintf("%s p50=%s p99=%s max=%s",
			strings.Join(counts, " "), p50, p99, longest)))
	}
	if total == 0 && dropped == 0 {
		return
	}
	attrs := append([]slog.Attr{
		slog.Duration("interval", interval.Round(time.Second)),
		slog.Uint64("total", total),
		slog.Uint64("5xx", failed),
		slog.Uint64("slow", rl.slowCount.Swap(0)),
		slog.Uint64("log_lines_dropped", dropped),
	}, lines...)
	rl.log.LogAttrs(context.Background(), slog.LevelInfo, "requests", attrs...)
}

// sortedRoutes are the routes in a stable order for the summary: by route,
// then method.
func sortedRoutes(m map[routeKey]*routeStats) []*routeStats {
	out := make([]*routeStats, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *routeStats) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return strings.Compare(a.method, b.method)
	})
	return out
}

// percentile is the upper bound of the bucket holding the q-th of n durations.
func percentile(hist *[durationBuckets]uint64, n uint64, q float64) time.Duration {
	rank := uint64(q*float64(n-1)) + 1
	var seen uint64
	for i, k := range hist {
		if seen += k; seen >= rank {
			return bucketUpper(i)
		}
	}
	return bucketUpper(durationBuckets - 1)
}
