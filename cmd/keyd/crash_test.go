package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// buildKeyd compiles this command once for the package's tests and returns
// the binary; TestMain removes it.
func buildKeyd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the keyd binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build keyd with")
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "keyd-test-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		bin := filepath.Join(dir, "keyd")
		if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built.bin = bin
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// built is the binary buildKeyd made.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// keydProcess is a running `keyd serve`.
type keydProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan struct{}
}

const crashTestAdminToken = "crash-test-admin-token-0123456789abcdef"

func startKeyd(t *testing.T, bin, db string, flags ...string) *keydProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, flags...)...)
	cmd.Env = append(os.Environ(), "KEYD_ADMIN_TOKEN="+crashTestAdminToken, "KEYD_WEBHOOK_ALLOW_PRIVATE=1", "KEYD_LOG_LEVEL=warn")
	p := &keydProcess{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = &syncWriter{w: p.stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("keyd stderr:\n%s", p.stderr)
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "keyd listening on "); ok {
				addr <- rest
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.url = <-addr:
	case <-p.done:
		t.Fatalf("keyd exited at start: %s", p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatal("keyd did not start listening")
	}
	return p
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// call sends a JSON request to keyd and decodes the answer into out.
func (p *keydProcess) call(t *testing.T, method, path, auth string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// gatedReceiver verifies every message with the reference Standard Webhooks
// library and answers the first few with 200; after that it holds requests
// until the gate opens (or the sender goes away), so that keyd is caught
// with deliveries in flight and messages pending.
type gatedReceiver struct {
	mu       sync.Mutex
	secret   string
	admitted int
	limit    int
	held     int
	acked    map[string]string // message id -> event type, answered 200
	bad      int
	gate     chan struct{}
}

func (rc *gatedReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	wh, err := standardwebhooks.NewWebhook(rc.secret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	if err != nil {
		rc.bad++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	wait := rc.admitted >= rc.limit
	if wait {
		rc.held++
	} else {
		rc.admitted++
	}
	rc.mu.Unlock()
	if wait {
		select {
		case <-rc.gate:
		case <-r.Context().Done():
			rc.mu.Lock()
			rc.held--
			rc.mu.Unlock()
			return // keyd went away: no answer
		}
		rc.mu.Lock()
		rc.held--
		rc.mu.Unlock()
	}
	var payload struct{ Type string }
	json.Unmarshal(body, &payload)
	rc.mu.Lock()
	rc.acked[r.Header.Get("webhook-id")] = payload.Type
	rc.mu.Unlock()
}

func (rc *gatedReceiver) state() (acked, held, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.acked), rc.held, rc.bad
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoMessageIsLostWhenKeydIsKilled kills keyd with SIGKILL while it is
// delivering, restarts it on the same database, and checks that the
// receiver gets every message at least once.
func TestNoMessageIsLostWhenKeydIsKilled(t *testing.T) {
	start := time.Now()
	bin := buildKeyd(t)
	t.Logf("built in %v", time.Since(start))
	db := filepath.Join(t.TempDir(), "keyd.db")
	rc := &gatedReceiver{limit: 300, acked: map[string]string{}, gate: make(chan struct{})}
	srv := httptest.NewServer(rc)
	var openGate sync.Once
	t.Cleanup(func() { openGate.Do(func() { close(rc.gate) }); srv.Close() })

	k := startKeyd(t, bin, db)
	var created struct {
		Account struct{ ID string }
		Key     string
	}
	k.call(t, "POST", "/admin/v1/accounts", crashTestAdminToken, map[string]any{"name": "Crash", "email": "c@crash.test", "plan": "pro", "credits": 0}, &created)
	k.call(t, "PATCH", "/admin/v1/accounts/"+created.Account.ID, crashTestAdminToken, map[string]any{"alias_limit": 1000}, nil)
	key := created.Key
	var hook struct {
		Webhook struct{ ID string }
		Secret  string
	}
	k.call(t, "POST", "/v1/webhooks", key, map[string]any{"url": srv.URL + "/hook", "events": []string{"alias.*"}}, &hook)
	rc.mu.Lock()
	rc.secret = hook.Secret
	rc.mu.Unlock()

	// 1,000 events: 500 aliases created, then each deactivated.
	const aliases = 500
	ids := make([]string, 0, aliases)
	for i := range aliases {
		var out struct{ Alias struct{ ID string } }
		k.call(t, "POST", "/v1/aliases", key, map[string]any{"name": fmt.Sprintf("site %d", i)}, &out)
		ids = append(ids, out.Alias.ID)
	}
	for _, id := range ids {
		k.call(t, "POST", "/v1/aliases/"+id+"/deactivate", key, nil, nil)
	}
	const events = 2 * aliases
	t.Logf("events made after %v", time.Since(start))

	// Kill keyd while it waits on deliveries in flight, with most of the
	// messages still pending.
	waitUntil(t, "keyd to be held mid-delivery", 60*time.Second, func() bool {
		acked, held, _ := rc.state()
		return acked == rc.limit && held > 0
	})
	if err := k.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-k.done
	if acked, _, _ := rc.state(); acked >= events {
		t.Fatalf("all %d messages were delivered before the kill", acked)
	}

	t.Logf("killed after %v", time.Since(start))
	openGate.Do(func() { close(rc.gate) })
	k = startKeyd(t, bin, db)
	waitUntil(t, "every message to be received", 90*time.Second, func() bool {
		acked, _, _ := rc.state()
		return acked >= events
	})

	t.Logf("all received after %v", time.Since(start))
	// Every message keyd has is delivered, and the receiver has them all.
	var all []map[string]any
	waitUntil(t, "every message to be marked delivered", 30*time.Second, func() bool {
		all = all[:0]
		before := ""
		for {
			var page struct {
				Messages   []map[string]any
				NextBefore *string `json:"next_before"`
			}
			k.call(t, "GET", "/v1/webhooks/"+hook.Webhook.ID+"/deliveries?limit=100&before="+before, key, nil, &page)
			all = append(all, page.Messages...)
			if page.NextBefore == nil {
				break
			}
			before = *page.NextBefore
		}
		for _, m := range all {
			if m["status"] != "delivered" {
				return false
			}
		}
		return true
	})
	rc.mu.Lock()
	acked, bad := make(map[string]string, len(rc.acked)), rc.bad
	for id, typ := range rc.acked {
		acked[id] = typ
	}
	rc.mu.Unlock()
	if len(all) != events || len(acked) != events {
		t.Fatalf("keyd has %d messages and the receiver %d distinct ones, want %d", len(all), len(acked), events)
	}
	counts := map[string]int{}
	for _, m := range all {
		id := m["id"].(string)
		typ, ok := acked[id]
		if !ok {
			t.Fatalf("message %s never reached the receiver", id)
		}
		if typ != m["type"] {
			t.Fatalf("message %s arrived as %s, is %s", id, typ, m["type"])
		}
		counts[typ]++
	}
	if counts["alias.created"] != aliases || counts["alias.deactivated"] != aliases {
		t.Fatalf("received %v", counts)
	}
	if bad != 0 {
		t.Fatalf("%d requests failed signature verification", bad)
	}

	t.Logf("checked after %v", time.Since(start))
	// An orderly stop exits cleanly.
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(30 * time.Second):
		t.Fatal("keyd did not stop on SIGTERM")
	}
	if code := k.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("keyd exited with %d after SIGTERM", code)
	}
}
