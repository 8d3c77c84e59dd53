package webhooks

import (
	"bytes"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keyd/store"
)

// syncBuffer is a log destination that deliveries may write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// networkDetail matches what an owner must never read in the deliveries
// log: an IPv4 or IPv6 address, a port, or the lookup of a resolver.
var networkDetail = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|\[?[0-9a-fA-F]*::[0-9a-fA-F:]*\]?|:\d+|\bon [^ ]+:53\b|dial tcp|lookup `)

// closedPort returns a loopback address:port on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Attempts that get no answer are logged for the owner as a plain reason,
// with the dialled address, the port and the resolver only in the
// operator's log; a receiver refused by the address policy fails at once.
func TestFailedAttemptsTellTheOwnerAReasonAndTheOperatorTheDetail(t *testing.T) {
	logs := &syncBuffer{}
	e := newWorkerEnv(t, false, WorkerConfig{
		Client: NewClient(false), // loopback is refused, as in production
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	loopback := newReceiver(t, answer(200, nil, "ok"))
	// The policy refuses loopback, so the closed port is dialled by a
	// worker that allows it, as it would be on a public address.
	open := newWorkerEnv(t, false, WorkerConfig{Logger: slog.New(slog.NewTextHandler(logs, nil))})

	refusedHook, refusedSecret := e.endpoint(loopback.URL+"/hook", "alias.*")
	unknownHook, _ := e.endpoint("http://receiver.invalid/hook", "alias.*")
	e.alias("client")
	e.sweep()

	// Refused by the address policy: nothing reached the receiver, the
	// message failed with its one attempt, and nothing is scheduled.
	if n := len(loopback.requests()); n != 0 {
		t.Fatalf("the refused receiver got %d requests", n)
	}
	m := e.oneMessage(refusedHook.ID)
	if m.Status != store.MessageFailed || m.NextAttemptAt != nil || len(m.Attempts) != 1 {
		t.Fatalf("refused message: status %s, next %v, %d attempts; want failed at once", m.Status, m.NextAttemptAt, len(m.Attempts))
	}
	if a := m.Attempts[0]; a.Outcome != string(OutcomeRefused) || !strings.HasPrefix(a.Error, "address not allowed") ||
		!strings.Contains(a.Error, "not retried") {
		t.Fatalf("refused attempt logged as %+v", a)
	}
	// A name that does not resolve (.invalid never does) is retried.
	m = e.oneMessage(unknownHook.ID)
	if m.Status != store.MessagePending || m.NextAttemptAt == nil || len(m.Attempts) != 1 {
		t.Fatalf("unresolvable name: %+v", m)
	}
	if a := m.Attempts[0]; a.Outcome != string(OutcomeRetry) || a.Error != reasonNameNotFound {
		t.Fatalf("unresolvable name logged as %+v", a)
	}

	// A closed port: connection refused, retried.
	closedHook, _ := open.endpoint("http://"+closedPort(t)+"/hook", "alias.*")
	open.alias("client")
	open.sweep()
	m = open.oneMessage(closedHook.ID)
	if m.Status != store.MessagePending || len(m.Attempts) != 1 || m.Attempts[0].Error != reasonConnRefused {
		t.Fatalf("closed port: %+v", m)
	}

	// A day later the refused message was never tried again.
	for range 8 {
		e.clock.Advance(5 * time.Hour)
		e.sweep()
	}
	for _, m := range e.messages(refusedHook.ID) {
		if m.Status != store.MessageFailed || len(m.Attempts) != 1 || len(loopback.requests()) != 0 {
			t.Fatalf("a refused message was tried %d times (status %s)", len(m.Attempts), m.Status)
		}
	}

	// What the owner reads names no address, port or resolver.
	for _, hook := range []struct {
		env *workerEnv
		id  string
	}{{e, refusedHook.ID}, {e, unknownHook.ID}, {open, closedHook.ID}} {
		for _, m := range hook.env.messages(hook.id) {
			for _, a := range m.Attempts {
				if a.Error == "" {
					t.Fatalf("attempt %+v has no reason", a)
				}
				if s := networkDetail.FindString(a.Error); s != "" {
					t.Fatalf("the deliveries log shows %q: %q", s, a.Error)
				}
			}
		}
	}

	// The operator's log has the detail, and never the secret.
	log := logs.String()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(loopback.URL, "http://"))
	for _, want := range []string{"127.0.0.1:" + port, "destination address refused: loopback", "receiver.invalid", "no such host", "connection refused"} {
		if !strings.Contains(log, want) {
			t.Errorf("operator log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, strings.TrimPrefix(refusedSecret, SecretPrefix)) {
		t.Fatal("the operator log contains a webhook secret")
	}
}

func TestFailureReasonNamesNoAddress(t *testing.T) {
	// Real errors from real dials, with the client as deliveries use it.
	closed := httptest.NewServer(nil)
	closed.Close()
	for _, tt := range []struct {
		url, want string
		private   bool
	}{
		{closed.URL, reasonConnRefused, true},
		{closed.URL, reasonAddressRefused, false},
		{"http://[::1]:1/", reasonAddressRefused, false},
		{"http://nothing-here.invalid/", reasonNameNotFound, true},
	} {
		_, err := NewClient(tt.private).Get(tt.url)
		if err == nil {
			t.Fatalf("GET %s succeeded", tt.url)
		}
		if got := failureReason(err); got != tt.want {
			t.Errorf("GET %s: %v gives %q, want %q", tt.url, err, got, tt.want)
		}
	}
	// An error it does not know keeps its words unless they name the network.
	if got := failureReason(errString("unsupported protocol scheme \"ftp\"")); got != `unsupported protocol scheme "ftp"` {
		t.Errorf("plain error became %q", got)
	}
	if got := failureReason(errString("read from 10.0.0.7:443 failed")); got != reasonNoAnswer {
		t.Errorf("error naming an address became %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
