package webhooks

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ClientTimeout bounds a whole delivery attempt made with [NewClient]'s
// client: connecting, sending, and reading the answer.
const ClientTimeout = 15 * time.Second

// NewClient returns the HTTP client for deliveries. Receivers are chosen by
// account owners, so the client must not become a way into the operator's
// network:
//
//   - The dialer checks every address it is about to connect to, after DNS
//     resolution (net.Dialer.Control), so a host name that resolves to a
//     refused address, or is re-pointed there after [ValidateURL] accepted
//     it, is caught. Unless allowPrivate is set, loopback, private (RFC 1918,
//     fc00::/7), shared (100.64.0.0/10), link-local (169.254.0.0/16 with the
//     cloud metadata address, fe80::/10) and IPv4-mapped forms of these are
//     refused; unspecified, multicast and broadcast addresses always are.
//   - Redirects are never followed: the 3xx answer itself is returned, since a
//     redirect could point anywhere and a receiver must answer 2xx itself.
//   - No proxy is taken from the environment, since a proxy would connect on
//     the client's behalf and escape the address check.
//   - The whole exchange is bounded by [ClientTimeout].
//
// allowPrivate is for development and tests (--webhook-allow-private).
// Make one client and share it: each has its own connection pool. Tests may
// shorten its Timeout.
func NewClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   dialControl(allowPrivate),
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			ForceAttemptHTTP2:      true,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    10 * time.Second,
			MaxIdleConns:           100,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: ClientTimeout,
	}
}

// dialControl returns the net.Dialer.Control hook that refuses addresses.
// It runs once per address actually dialled, after name resolution.
func dialControl(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		switch network {
		case "tcp", "tcp4", "tcp6":
		default:
			return fmt.Errorf("%w: network %s", ErrBlockedAddress, network)
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: unparsable address", ErrBlockedAddress)
		}
		return checkAddr(ap.Addr(), allowPrivate)
	}
}
