package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestServerHasLimitsByDefault(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), defaultLimits(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout != 5*time.Second || srv.ReadTimeout != 30*time.Second || srv.WriteTimeout != 30*time.Second ||
		srv.IdleTimeout != 120*time.Second || srv.MaxHeaderBytes != 16<<10 {
		t.Fatalf("server limits: header %v, read %v, write %v, idle %v, header bytes %d", srv.ReadHeaderTimeout,
			srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	if err := run(t.Context(), []string{"serve", "--read-header-timeout", "0s"}, func(string) string { return "" }, io.Discard, io.Discard); !errors.As(err, new(usageError)) {
		t.Fatalf("a zero timeout: %v, want a usage error", err)
	}
	db := filepath.Join(t.TempDir(), "keyd.db")
	if err := run(t.Context(), []string{"serve", "--db", db, "--addr", "127.0.0.1:0", "--trusted-proxies", "not an address"},
		func(string) string { return "" }, io.Discard, io.Discard); !errors.As(err, new(usageError)) {
		t.Fatalf("a bad trusted proxy: %v, want a usage error", err)
	}
}

// hostPort is the host:port of a keyd URL.
func hostPort(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// cutOff reports whether the server closes conn (or answers and closes)
// while send keeps trickling bytes, within limit.
func cutOff(t *testing.T, conn net.Conn, limit time.Duration, send func(i int) []byte) bool {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, conn) // returns when the server closes
		close(closed)
	}()
	deadline := time.After(limit)
	for i := 0; ; i++ {
		select {
		case <-closed:
			return true
		case <-deadline:
			return false
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := conn.Write(send(i)); err != nil {
			<-closed
			return true
		}
	}
}

// TestServerLimits runs the real binary with short timeouts and checks that
// each limit cuts off the client that exceeds it, while others are served.
func TestServerLimits(t *testing.T) {
	bin := buildKeyd(t)
	p := startKeyd(t, bin, filepath.Join(t.TempDir(), "keyd.db"),
		"--read-header-timeout", "500ms", "--read-timeout", "1s", "--idle-timeout", "1s")
	addr := hostPort(t, p.url)

	t.Run("header too large", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, p.url+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("a 64 KiB header: %d, want 431", res.StatusCode)
		}
	})

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: keyd\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		// One byte every 100ms: the headers never end.
		if !cutOff(t, conn, 20*time.Second, func(int) []byte { return []byte("a") }) {
			t.Fatal("a client sending its headers a byte at a time was not cut off")
		}
	})

	t.Run("slow body", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST /v1/validate HTTP/1.1\r\nHost: keyd\r\n"+
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\nkey="); err != nil {
			t.Fatal(err)
		}
		if !cutOff(t, conn, 20*time.Second, func(int) []byte { return []byte("a") }) {
			t.Fatal("a client sending its body a byte at a time was not cut off")
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: keyd\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %d", res.StatusCode)
		}
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("an idle keep-alive connection: %v, want it closed by the server", err)
		}
	})

	// Whatever the others did, keyd still answers.
	res, err := http.Get(p.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("healthz after the limits: %d", res.StatusCode)
	}
}

// raiseOpenFiles makes sure this process, and the processes it starts, may
// open n files, or skips the test.
func raiseOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if rl.Cur >= n {
		return
	}
	old := rl
	rl.Cur = n
	if rl.Max < n {
		rl.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("cannot raise the open files limit from %d (hard %d) to %d: %v", old.Cur, old.Max, n, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// TestTenThousandIdleConnections opens 10,000 TCP connections to keyd that
// send nothing, then validates a key on a new one.
func TestTenThousandIdleConnections(t *testing.T) {
	const idle = 10_000
	// keyd holds one descriptor per connection, and so does this process;
	// the child inherits the limit set here.
	raiseOpenFiles(t, idle+2_000)
	bin := buildKeyd(t)
	p := startKeyd(t, bin, filepath.Join(t.TempDir(), "keyd.db"), "--read-header-timeout", "5m")
	addr := hostPort(t, p.url)

	var created struct {
		Key string `json:"key"`
	}
	if status := p.call(t, http.MethodPost, "/admin/v1/accounts", crashTestAdminToken,
		map[string]any{"name": "Busy", "email": "busy@example.com", "plan": "enterprise"}, &created); status != http.StatusCreated {
		t.Fatalf("create account: %d", status)
	}

	conns := make([]net.Conn, idle)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < idle; i += 8 {
				c, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Post(p.url+"/v1/validate", "application/x-www-form-urlencoded", strings.NewReader("key="+created.Key))
	if err != nil {
		t.Fatalf("validate with %d idle connections open: %v", idle, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"code":"VALID"`) {
		t.Fatalf("validate with %d idle connections open: %d %s", idle, res.StatusCode, body)
	}

	// The idle connections are still open: reading one times out rather
	// than finding it closed.
	for _, i := range []int{0, idle / 2, idle - 1} {
		conns[i].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := conns[i].Read(make([]byte, 1))
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("idle connection %d: %v, want it still open", i, err)
		}
	}
	for i, c := range conns {
		c.Close()
		conns[i] = nil
	}
}
