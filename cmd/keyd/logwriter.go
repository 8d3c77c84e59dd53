package main

import (
	"io"
	"sync"
	"sync/atomic"
)

// logBufferBytes bounds the log lines waiting for the output: about two
// thousand lines of a request's size.
const logBufferBytes = 256 << 10

// logWriter is keyd serve's log output. Write copies the line into a
// bounded buffer and returns at once; one goroutine hands what collected to
// the real output, many lines in one write. When the output is slower than
// lines come (a blocked pipe, a full disk behind journald), the buffer fills
// and further lines are dropped and counted, never queued without bound and
// never holding up whoever logs, least of all a request. slog's handlers
// write each record with one Write call, so only whole lines are dropped.
type logWriter struct {
	out     io.Writer
	limit   int
	dropped atomic.Uint64

	mu     sync.Mutex
	buf    []byte
	closed bool
	wake   chan struct{} // one pending signal: there is something to write
	done   chan struct{} // closed when the writing goroutine has finished
}

func newLogWriter(out io.Writer, limit int) *logWriter {
	w := &logWriter{out: out, limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// Write takes one line; it never waits for the output.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		// After Close (the last lines of a shutdown) the line goes out
		// directly, once the buffered ones have.
		w.mu.Unlock()
		<-w.done
		w.mu.Lock()
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > w.limit {
		w.dropped.Add(1)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Dropped is the number of lines dropped so far because the output was slow.
func (w *logWriter) Dropped() uint64 { return w.dropped.Load() }

func (w *logWriter) run() {
	defer close(w.done)
	var spare []byte
	for range w.wake {
		w.mu.Lock()
		batch := w.buf
		w.buf = spare[:0]
		w.mu.Unlock()
		if len(batch) > 0 {
			w.out.Write(batch)
		}
		spare = batch
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.out.Write(w.buf)
		w.buf = nil
	}
}

// Close writes what is buffered and waits for it; later lines are written
// directly.
func (w *logWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.wake)
	w.mu.Unlock()
	<-w.done
	return nil
}
