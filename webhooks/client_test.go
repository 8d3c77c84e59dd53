package webhooks

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestDialControl(t *testing.T) {
	tests := []struct {
		network, addr string
		refused       string // error part with private refused; "" = allowed
		privateOK     bool
	}{
		{"tcp4", "93.184.216.34:443", "", true},
		{"tcp6", "[2606:2800:220:1:248:1893:25c8:1946]:443", "", true},
		{"tcp4", "127.0.0.1:80", "loopback", true},
		{"tcp4", "127.8.9.10:80", "loopback", true},
		{"tcp6", "[::1]:80", "loopback", true},
		{"tcp4", "10.0.0.1:80", "private", true},
		{"tcp4", "10.255.255.255:80", "private", true},
		{"tcp4", "172.16.5.4:80", "private", true},
		{"tcp4", "172.32.0.1:80", "", true}, // just outside 172.16.0.0/12
		{"tcp4", "192.168.0.10:80", "private", true},
		{"tcp4", "100.64.0.1:80", "carrier-grade NAT", true},
		{"tcp4", "100.127.255.255:80", "carrier-grade NAT", true},
		{"tcp4", "100.128.0.1:80", "", true}, // just outside 100.64.0.0/10
		{"tcp4", "169.254.169.254:80", "link-local", true},
		{"tcp6", "[fe80::1]:80", "link-local", true},
		{"tcp6", "[fe80::1%eth0]:80", "link-local", true},
		{"tcp6", "[fd12:3456::1]:80", "unique local", true},
		{"tcp6", "[::ffff:127.0.0.1]:80", "loopback", true},
		{"tcp6", "[::ffff:10.0.0.1]:80", "private", true},
		{"tcp6", "[::ffff:169.254.169.254]:80", "link-local", true},
		{"tcp6", "[::ffff:100.64.0.1]:80", "carrier-grade NAT", true},
		{"tcp6", "[64:ff9b::7f00:1]:80", "loopback", true},
		{"tcp6", "[64:ff9b::808:808]:80", "", true},
		{"tcp4", "0.0.0.0:80", "unspecified", false},
		{"tcp6", "[::]:80", "unspecified", false},
		{"tcp4", "224.0.0.251:80", "multicast", false},
		{"tcp6", "[ff02::1]:80", "multicast", false},
		{"tcp4", "255.255.255.255:80", "broadcast", false},
		{"udp4", "8.8.8.8:53", "network udp4", false},
		{"tcp4", "example.com:80", "unparsable", false},
	}
	refuse, allow := dialControl(false), dialControl(true)
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := refuse(tt.network, tt.addr, nil)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("private refused: %v, want allowed", err)
				}
			} else if !errors.Is(err, ErrBlockedAddress) || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("private refused: %v, want ErrBlockedAddress mentioning %q", err, tt.refused)
			}
			err = allow(tt.network, tt.addr, nil)
			if tt.privateOK != (err == nil) {
				t.Fatalf("private allowed: %v, want ok=%v", err, tt.privateOK)
			}
			if err != nil && !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("error %v does not wrap ErrBlockedAddress", err)
			}
		})
	}
}

// countingServer is a receiver that counts the requests that reach it.
func countingServer(t *testing.T, network, addr string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestClientRefusesPrivateDestinations(t *testing.T) {
	v4, hits4 := countingServer(t, "tcp4", "127.0.0.1:0")
	port := v4.Listener.Addr().(*net.TCPAddr).Port
	portStr := ":" + strconv.Itoa(port)

	tests := []struct {
		name  string
		url   string
		hits  *atomic.Int64
		local bool // a local server answers, so it must work when private is allowed
	}{
		{"IPv4 loopback", "http://127.0.0.1" + portStr + "/", hits4, true},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]" + portStr + "/", hits4, true},
		{"name resolving to loopback", "http://localhost" + portStr + "/", hits4, true},
		// Refused before any packet is sent, so no traffic leaves the host.
		{"private 10/8", "http://10.1.2.3/", nil, false},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/", nil, false},
		{"CGNAT", "http://100.64.1.1/", nil, false},
		{"unique local IPv6", "http://[fd00::1]/", nil, false},
	}
	if v6, hits6 := countingServer(t, "tcp6", "[::1]:0"); v6 != nil {
		tests = append(tests, struct {
			name  string
			url   string
			hits  *atomic.Int64
			local bool
		}{"IPv6 loopback", "http://[::1]:" + strconv.Itoa(v6.Listener.Addr().(*net.TCPAddr).Port) + "/", hits6, true})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before int64
			if tt.hits != nil {
				before = tt.hits.Load()
			}
			resp, err := NewClient(false).Get(tt.url)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded with private addresses refused", tt.url)
			}
			if !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("GET %s: %v, want ErrBlockedAddress", tt.url, err)
			}
			if tt.hits != nil && tt.hits.Load() != before {
				t.Fatal("the refused request reached the server")
			}
			if !tt.local {
				return
			}
			resp, err = NewClient(true).Get(tt.url)
			if err != nil {
				t.Fatalf("GET %s with private allowed: %v", tt.url, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" || tt.hits.Load() != before+1 {
				t.Fatalf("GET %s with private allowed: %d %q, hits %d", tt.url, resp.StatusCode, body, tt.hits.Load()-before)
			}
		})
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	target, targetHits := countingServer(t, "tcp4", "127.0.0.1:0")
	for _, code := range []int{301, 302, 303, 307, 308} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/elsewhere", code)
		}))
		resp, err := NewClient(true).Post(redirector.URL, "application/json", strings.NewReader("{}"))
		redirector.Close()
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Fatalf("status = %d, want the %d itself", resp.StatusCode, code)
		}
		if got := resp.Header.Get("Location"); got != target.URL+"/elsewhere" {
			t.Fatalf("Location = %q", got)
		}
	}
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("redirect target was reached %d times", n)
	}
}

func TestClientSettings(t *testing.T) {
	c := NewClient(false)
	if c.Timeout != ClientTimeout || ClientTimeout.Seconds() != 15 {
		t.Fatalf("Timeout = %v, want 15s", c.Timeout)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T", c.Transport)
	}
	if tr.Proxy != nil {
		t.Fatal("Transport takes a proxy, which would bypass the address check")
	}
	if c.Jar != nil {
		t.Fatal("client keeps cookies")
	}
	// A proxy in the environment must not be used. Loopback destinations
	// never go through environment proxies, so use a refused private
	// address: through a proxy, the dial would go to the proxy's address
	// (itself refused as loopback, so no traffic leaves either way).
	for _, k := range []string{"HTTP_PROXY", "http_proxy"} {
		t.Setenv(k, "http://127.0.0.1:9")
	}
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		t.Setenv(k, "")
	}
	_, err := c.Get("http://10.9.8.7/")
	var ue *url.Error
	if !errors.Is(err, ErrBlockedAddress) || !errors.As(err, &ue) || !strings.Contains(err.Error(), "10.9.8.7:80") {
		t.Fatalf("GET private address with HTTP_PROXY set: %v, want a refused dial to 10.9.8.7", err)
	}
}
