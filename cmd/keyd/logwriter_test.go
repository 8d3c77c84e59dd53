package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	pluginapi "keyd/plugin-api"
)

// blockingWriter holds every Write until release is closed, as a stalled
// pipe or terminal would; entered is signalled at the first Write.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// When the log's output blocks, logging goes on without waiting: lines past
// the buffer are dropped and counted (and exported as a metric); the rest are
// written whole once the output moves again.
func TestLogWriterDropsWhenOutputBlocks(t *testing.T) {
	out := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	w := newLogWriter(out, 4096)
	log := slog.New(slog.NewTextHandler(w, nil))
	m := pluginapi.NewMetrics("test")
	m.WatchLogDrops(w.Dropped)

	log.Info("first")
	<-out.entered // the writing goroutine is now stuck in the output
	const lines = 1000
	for i := range lines {
		// Would hang here if a line waited for the output.
		log.Info("request", "n", i, "key_hint", "AbCd")
	}
	dropped := w.Dropped()
	if dropped == 0 || dropped >= lines {
		t.Fatalf("%d of %d lines dropped behind a blocked output, want some but not all", dropped, lines)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if want := fmt.Sprintf("keyd_log_lines_dropped_total %d\n", dropped); !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %q", want)
	}

	close(out.release)
	w.Close()
	log.Info("after close") // written directly, after the buffered lines
	got := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
	if want := 1 + lines - int(dropped) + 1; len(got) != want {
		t.Fatalf("%d lines written, want %d (first, the %d kept, after close)", len(got), want, lines-int(dropped))
	}
	for i, line := range got {
		if !strings.HasPrefix(line, "time=") || !strings.Contains(line, " msg=") {
			t.Fatalf("line %d is not a whole log line: %q", i, line)
		}
	}
	if !strings.Contains(got[0], "msg=first") || !strings.Contains(got[1], "n=0 ") || !strings.Contains(got[len(got)-1], "msg=\"after close\"") {
		t.Errorf("lines out of order: first %q, second %q, last %q", got[0], got[1], got[len(got)-1])
	}
}
