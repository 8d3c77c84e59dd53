//go:build soak

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSoak drives the mixed load against the real binary for $KEYD_SOAK
// (a Go duration; `make soak` sets it from SOAK_DURATION) and checks that
// keyd's resident memory, goroutines, threads and open files stay level and
// that no request fails other than by design. It is built only with the
// soak tag (make soak), so plain go test neither runs nor skips it.
// KEYD_SOAK_PACE (default 20ms) is each worker's pause between requests.
func TestSoak(t *testing.T) {
	spec := os.Getenv("KEYD_SOAK")
	if spec == "" {
		t.Fatal("set KEYD_SOAK to a duration (e.g. 10m), or use make soak")
	}
	duration, err := time.ParseDuration(spec)
	if err != nil || duration < time.Minute {
		t.Fatalf("KEYD_SOAK=%q: want a duration of at least 1m", spec)
	}
	pace := 20 * time.Millisecond
	if p := os.Getenv("KEYD_SOAK_PACE"); p != "" {
		if pace, err = time.ParseDuration(p); err != nil {
			t.Fatalf("KEYD_SOAK_PACE=%q: %v", p, err)
		}
	}

	bin := buildKeyd(t)
	dbPath := filepath.Join(t.TempDir(), "keyd.db")
	rc := newHookReceiver()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	pprofAddr := freeLoopbackAddr(t)
	k := startKeyd(t, bin, dbPath, "--pprof", pprofAddr)
	pid := k.cmd.Process.Pid
	// make soak runs without go test's timeout, which cannot follow
	// SOAK_DURATION; this bounds the whole test instead.
	watchdog := time.AfterFunc(duration+10*time.Minute, func() {
		k.cmd.Process.Kill()
		panic(fmt.Sprintf("soak test still running %v after its %v of load", 10*time.Minute, duration))
	})
	defer watchdog.Stop()
	ml := setUpMixedLoad(t, newLoadClient(k.url), srv.URL, rc, 8)

	// Warm up for a fifth of the run (at most a minute), then compare the
	// first window after it with the last window of the run.
	warmup := min(time.Minute, duration/5)
	window := min(time.Minute, (duration-warmup)/3)
	t.Logf("soak: %v, pace %v, warm-up %v, windows of %v; keyd pid %d", duration, pace, warmup, window, pid)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	loadDone := make(chan struct{})
	go func() { ml.run(ctx, pace); close(loadDone) }()

	started := time.Now()
	var samples []soakSample
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastLog := started
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-k.done:
			t.Fatalf("keyd exited during the soak")
		case <-tick.C:
			s, err := sampleKeyd(pid, pprofAddr, dbPath)
			if err != nil {
				t.Fatalf("sampling keyd: %v", err)
			}
			s.at = time.Since(started)
			s.requests = ml.stats.total()
			samples = append(samples, s)
			if time.Since(lastLog) >= time.Minute {
				lastLog = time.Now()
				t.Logf("%v", s)
			}
		}
	}
	ml.stopping.Store(true)
	<-loadDone
	elapsed := time.Since(started)
	total := ml.stats.total()
	t.Logf("%d requests in %v (%.0f/s); answers by design: %v", total, elapsed.Round(time.Second), float64(total)/elapsed.Seconds(), ml.stats.byDesign)
	if failed := ml.stats.failed(); len(failed) > 0 {
		t.Errorf("requests that failed:\n%s", strings.Join(failed, "\n"))
	}

	first := averageSamples(samples, warmup, warmup+window)
	last := averageSamples(samples, duration-window, duration+time.Hour)
	t.Logf("first window: %v", first)
	t.Logf("last window:  %v", last)
	// Tolerances: RSS may grow as much as the database file did, whose new
	// pages SQLite's page cache takes in (at most 64 MiB per connection, so
	// this levels off in longer runs), plus a quarter and 32 MiB; the Go
	// heap holds the key index, which grows with every alias created
	// (deleted ones stay, to answer REVOKED), hence half again and 16 MiB.
	const mib = 1 << 20
	if limit := first.rss*5/4 + 32*mib + max(0, last.db-first.db); last.rss > limit {
		t.Errorf("resident memory grew from %d MiB to %d MiB (allowed up to %d MiB)", first.rss/mib, last.rss/mib, limit/mib)
	}
	if limit := first.heap*3/2 + 16*mib; last.heap > limit {
		t.Errorf("Go heap in use grew from %d MiB to %d MiB (allowed up to %d MiB)", first.heap/mib, last.heap/mib, limit/mib)
	}
	if limit := first.goroutines + 30; last.goroutines > limit {
		t.Errorf("goroutines grew from %d to %d", first.goroutines, last.goroutines)
	}
	if limit := first.threads + 10; last.threads > limit {
		t.Errorf("threads grew from %d to %d", first.threads, last.threads)
	}
	if limit := first.fds + 20; last.fds > limit {
		t.Errorf("open files grew from %d to %d", first.fds, last.fds)
	}

	// Every event went out, and keyd stops in order on an intact database.
	db := openReadOnly(t, dbPath)
	var missing []string
	waitUntil(t, "every webhook to be received", 60*time.Second, func() bool {
		var err error
		if missing, err = ml.undelivered(db); err != nil {
			t.Fatal(err)
		}
		return len(missing) == 0
	})
	acked, dups, bad := rc.counts()
	t.Logf("%d webhooks received, %d twice, %d with a bad signature", acked, dups, bad)
	if bad > 0 {
		t.Errorf("%d webhooks failed signature verification", bad)
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(60 * time.Second):
		t.Fatal("keyd did not stop on SIGTERM")
	}
	if code := k.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("keyd exited with %d after SIGTERM", code)
	}
	ml.checkCredits(t, db)
	var integrity string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check: %q, %v", integrity, err)
	}
	if fi, err := os.Stat(dbPath); err == nil {
		t.Logf("database: %d MiB", fi.Size()/mib)
	}
}

// soakSample is one look at the keyd process.
type soakSample struct {
	at                       time.Duration
	requests                 int
	rss, heap, db            int64 // bytes; db is the database file and its WAL
	goroutines, threads, fds int
}

func (s soakSample) String() string {
	return fmt.Sprintf("t=%v requests=%d rss=%.1fMiB heap=%.1fMiB db=%.1fMiB goroutines=%d threads=%d fds=%d",
		s.at.Round(time.Second), s.requests, float64(s.rss)/(1<<20), float64(s.heap)/(1<<20), float64(s.db)/(1<<20),
		s.goroutines, s.threads, s.fds)
}

// averageSamples averages the samples taken in [from, to).
func averageSamples(samples []soakSample, from, to time.Duration) soakSample {
	var sum soakSample
	n := 0
	for _, s := range samples {
		if s.at < from || s.at >= to {
			continue
		}
		n++
		sum.rss += s.rss
		sum.heap += s.heap
		sum.db += s.db
		sum.goroutines += s.goroutines
		sum.threads += s.threads
		sum.fds += s.fds
		sum.requests = s.requests
		sum.at = s.at
	}
	if n == 0 {
		return sum
	}
	sum.rss /= int64(n)
	sum.heap /= int64(n)
	sum.db /= int64(n)
	sum.goroutines /= n
	sum.threads /= n
	sum.fds /= n
	return sum
}

// sampleKeyd reads the database's size, RSS and threads from /proc, open files from its fd
// directory, and goroutines and heap in use from its pprof endpoint.
func sampleKeyd(pid int, pprofAddr, dbPath string) (soakSample, error) {
	var s soakSample
	for _, f := range []string{dbPath, dbPath + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			s.db += fi.Size()
		}
	}
	proc := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		name, value, _ := strings.Cut(line, ":")
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		switch name {
		case "VmRSS":
			kb, _ := strconv.ParseInt(fields[0], 10, 64)
			s.rss = kb << 10
		case "Threads":
			s.threads, _ = strconv.Atoi(fields[0])
		}
	}
	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return s, err
	}
	s.fds = len(fds)

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil {
		return s, fmt.Errorf("goroutine profile: %w", err)
	}
	if _, err := fmt.Sscanf(line, "goroutine profile: total %d", &s.goroutines); err != nil {
		return s, fmt.Errorf("goroutine profile %q: %v", line, err)
	}
	resp, err = client.Get("http://" + pprofAddr + "/debug/pprof/heap?debug=1")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "# HeapInuse = "); ok {
			s.heap, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return s, nil
}

// freeLoopbackAddr finds a loopback port nobody listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
