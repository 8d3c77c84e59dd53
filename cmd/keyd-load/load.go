package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadConfig is one load run: a fixed number of keep-alive connections, each
// sending its next request as soon as the previous answer is read (a closed
// loop), for a fixed time.
type loadConfig struct {
	Target      string        // base URL, e.g. http://127.0.0.1:8080
	Path        string        // /healthz, /v1/validate, ...
	Method      string        // GET or POST
	Body        string        // "form", "json", "usage", "spio" or "" (no body)
	Keys        []string      // known keys to send
	Unknown     float64       // share of requests with a random unknown key
	Connections int           // concurrency
	Duration    time.Duration // measured time
	Rate        float64       // requests a second in all, paced; 0: each connection as fast as it is answered
	Warmup      time.Duration // load before measuring, not counted
	ServerPID   int           // when set, the server's CPU time is measured too
}

// Result is what one load run measured.
type Result struct {
	Name        string         `json:"name"`
	Path        string         `json:"path"`
	Requests    int            `json:"requests"`
	Seconds     float64        `json:"seconds"`
	RPS         float64        `json:"rps"`
	P50ms       float64        `json:"p50_ms"`
	P99ms       float64        `json:"p99_ms"`
	Maxms       float64        `json:"max_ms"`
	Errors      int            `json:"errors"`
	Status      map[string]int `json:"status"`
	Connections int            `json:"connections"`
	Unknown     float64        `json:"unknown_share"`
	Body        string         `json:"body,omitempty"`
	// CPUus is the server's CPU time (user and system, all its threads) over
	// the measured time, in microseconds per request answered in it.
	CPUus      float64 `json:"cpu_us_per_req,omitempty"`
	CPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
}

// worker state: everything one connection records, merged at the end.
type tally struct {
	latencies []time.Duration
	status    map[int]int
	errors    int
}

func runLoad(ctx context.Context, cfg loadConfig) (Result, error) {
	u, err := url.Parse(cfg.Target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return Result{}, fmt.Errorf("target must be an http:// URL, got %q", cfg.Target)
	}
	if cfg.Body != "" && len(cfg.Keys) == 0 && cfg.Unknown < 1 {
		return Result{}, errors.New("no keys to send: give --keys FILE or --unknown 1")
	}
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	stopAt := measureFrom.Add(cfg.Duration)
	tallies := make([]tally, cfg.Connections)
	var wg sync.WaitGroup
	for i := range tallies {
		wg.Add(1)
		go func(t *tally, seed uint64) {
			defer wg.Done()
			w := &worker{cfg: &cfg, host: u.Host, rng: rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano()))), t: t}
			w.run(ctx, measureFrom, stopAt)
		}(&tallies[i], uint64(i))
	}
	var cpu cpuWindow
	if cfg.ServerPID != 0 {
		wg.Add(1)
		go func() { defer wg.Done(); cpu = measureCPU(ctx, cfg.ServerPID, measureFrom, stopAt) }()
	}
	wg.Wait()
	if cpu.err != nil {
		return Result{}, cpu.err
	}
	elapsed := time.Since(measureFrom)
	if d := stopAt.Sub(measureFrom); elapsed > d {
		elapsed = d // requests still in flight at the end were not counted
	}

	res := Result{Path: cfg.Path, Status: map[string]int{}, Connections: cfg.Connections, Unknown: cfg.Unknown, Body: cfg.Body, Seconds: elapsed.Seconds()}
	var all []time.Duration
	for _, t := range tallies {
		all = append(all, t.latencies...)
		res.Errors += t.errors
		for code, n := range t.status {
			res.Status[strconv.Itoa(code)] += n
		}
	}
	slices.Sort(all)
	res.Requests = len(all)
	res.RPS = float64(len(all)) / elapsed.Seconds()
	if cfg.ServerPID != 0 && len(all) > 0 {
		res.CPUSeconds = cpu.seconds
		res.CPUus = cpu.seconds * 1e6 / float64(len(all))
	}
	if len(all) > 0 {
		res.P50ms = ms(percentile(all, 0.50))
		res.P99ms = ms(percentile(all, 0.99))
		res.Maxms = ms(all[len(all)-1])
	}
	return res, nil
}

type cpuWindow struct {
	seconds float64
	err     error
}

// measureCPU is the CPU time process pid spends between from and to.
func measureCPU(ctx context.Context, pid int, from, to time.Time) cpuWindow {
	wait := func(t time.Time) error {
		select {
		case <-time.After(time.Until(t)):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(from); err != nil {
		return cpuWindow{err: err}
	}
	before, err := processCPU(pid)
	if err != nil {
		return cpuWindow{err: err}
	}
	if err := wait(to); err != nil {
		return cpuWindow{err: err}
	}
	after, err := processCPU(pid)
	return cpuWindow{seconds: after - before, err: err}
}

// clockTicks is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTicks = 100

// processCPU is the user and system CPU time of process pid and all its
// threads so far, in seconds, from /proc/PID/stat (utime and stime, the
// 14th and 15th fields).
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:])) // from field 3 on
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(utime+stime) / clockTicks, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile of sorted latencies, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// worker drives one keep-alive connection with hand-written HTTP/1.1, so the
// load generator spends far less CPU per request than the server does and
// measures the server rather than itself.
type worker struct {
	cfg  *loadConfig
	host string
	rng  *rand.Rand
	t    *tally

	conn net.Conn
	r    *bufio.Reader
	req  []byte
	key  [20]byte
}

func (w *worker) run(ctx context.Context, measureFrom, stopAt time.Time) {
	w.t.status = map[int]int{}
	w.t.latencies = make([]time.Duration, 0, 1<<14)
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	// With a rate, each connection sends its share at even intervals and
	// does not catch up on intervals its answers took longer than.
	var interval time.Duration
	if w.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(w.cfg.Connections) / w.cfg.Rate)
	}
	next := time.Now().Add(time.Duration(w.rng.Int64N(int64(interval) + 1))) // spread the connections' starts
	for ctx.Err() == nil {
		if interval > 0 {
			if wait := time.Until(next); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
			if next = next.Add(interval); next.Before(time.Now()) {
				next = time.Now()
			}
		}
		if w.conn == nil {
			c, err := net.DialTimeout("tcp", w.host, 2*time.Second)
			if err != nil {
				w.t.errors++
				time.Sleep(10 * time.Millisecond)
				if time.Now().After(stopAt) {
					return
				}
				continue
			}
			w.conn, w.r = c, bufio.NewReaderSize(c, 16<<10)
		}
		w.build()
		sent := time.Now()
		if sent.After(stopAt) {
			return
		}
		w.conn.SetDeadline(sent.Add(5 * time.Second))
		status, keepAlive, err := w.roundTrip()
		done := time.Now()
		if err != nil {
			w.t.errors++
			w.conn.Close()
			w.conn = nil
			continue
		}
		if !keepAlive {
			w.conn.Close()
			w.conn = nil
		}
		if sent.After(measureFrom) && !done.After(stopAt) {
			w.t.latencies = append(w.t.latencies, done.Sub(sent))
			w.t.status[status]++
		}
	}
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// nextKey is a known key from the sample or, with the configured share, a
// random well-formed key that (with overwhelming probability) does not exist.
func (w *worker) nextKey() string {
	if w.cfg.Unknown > 0 && (len(w.cfg.Keys) == 0 || w.rng.Float64() < w.cfg.Unknown) {
		for i := range w.key {
			w.key[i] = alphabet[w.rng.IntN(len(alphabet))]
		}
		return string(w.key[:])
	}
	return w.cfg.Keys[w.rng.IntN(len(w.cfg.Keys))]
}

// The fields a WordPress plugin sends besides the key.
const (
	formTail = "&site=https%3A%2F%2Fshop.example.com%2F&plugin=keyd-load&plugin_version=1.0.0&wp_version=6.8.1"
	jsonTail = `,"site":"https://shop.example.com/","plugin":"keyd-load","plugin_version":"1.0.0","wp_version":"6.8.1"}`
	// spioTail is the rest of a ShortPixel-style check (/v2/api-status.php)
	// as that plugin sends it when validating a key.
	spioTail = "&useragent=AgentMozilla%252F5.0&DomainCheck=https%3A%2F%2Fshop.example.com&Info=6.8.1%7C8.2.7" +
		"&ImagesCount=1200&ThumbsCount=8400&host=shop.example.com"
)

func (w *worker) build() {
	var body, ctype, apiKey string
	switch w.cfg.Body {
	case "form":
		body, ctype = "key="+w.nextKey()+formTail, "application/x-www-form-urlencoded"
	case "json":
		body, ctype = `{"key":"`+w.nextKey()+`"`+jsonTail, "application/json"
	case "usage":
		body, ctype, apiKey = `{"units":1}`, "application/json", w.nextKey()
	case "spio":
		body, ctype = "key="+w.nextKey()+spioTail, "application/x-www-form-urlencoded"
	case "receipt":
		body, ctype = "key="+w.nextKey()+formTail+"&receipt=true", "application/x-www-form-urlencoded"
	}
	b := w.req[:0]
	b = append(b, w.cfg.Method...)
	b = append(b, ' ')
	b = append(b, w.cfg.Path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, w.host...)
	b = append(b, "\r\nUser-Agent: keyd-load\r\n"...)
	if apiKey != "" {
		b = append(b, "X-API-Key: "...)
		b = append(b, apiKey...)
		b = append(b, "\r\n"...)
	}
	if ctype != "" {
		b = append(b, "Content-Type: "...)
		b = append(b, ctype...)
		b = append(b, "\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	w.req = b
}

var errBadResponse = errors.New("malformed HTTP response")

// roundTrip writes the request and reads one response, discarding its body.
func (w *worker) roundTrip() (status int, keepAlive bool, err error) {
	if _, err := w.conn.Write(w.req); err != nil {
		return 0, false, err
	}
	line, err := w.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errBadResponse
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errBadResponse
	}
	keepAlive = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h := strings.TrimSpace(string(line))
		if h == "" {
			break
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return 0, false, errBadResponse
		}
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(value); err != nil {
				return 0, false, errBadResponse
			}
		case strings.EqualFold(name, "Transfer-Encoding"):
			chunked = strings.EqualFold(value, "chunked")
		case strings.EqualFold(name, "Connection"):
			keepAlive = !strings.EqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		err = w.discardChunked()
	case length >= 0:
		_, err = w.r.Discard(length)
	default: // body runs to the end of the connection
		_, err = io.Copy(io.Discard, w.r)
		keepAlive = false
	}
	return status, keepAlive, err
}

func (w *worker) discardChunked() error {
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeText, _, _ := strings.Cut(strings.TrimSpace(string(line)), ";")
		size, err := strconv.ParseInt(sizeText, 16, 64)
		if err != nil {
			return errBadResponse
		}
		if size == 0 {
			for { // trailers, then the empty line
				line, err := w.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimSpace(line)) == 0 {
					return nil
				}
			}
		}
		if _, err := w.r.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

// readKeys reads a sample file written by `keyd seed`: one key a line.
func readKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k := strings.TrimSpace(sc.Text())
		if k == "" {
			continue
		}
		if len(k) != 20 {
			return nil, fmt.Errorf("%s: line %d is not a 20-character key", path, len(keys)+1)
		}
		keys = append(keys, k)
	}
	return keys, sc.Err()
}
