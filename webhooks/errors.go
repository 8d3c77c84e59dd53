package webhooks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"syscall"
)

// Sentinels for input that an API caller got wrong. Errors wrapping them
// have a message meant for that caller (no package prefix, no internals),
// so the HTTP layer can show err.Error() as it is, for example in the
// "fields" of its error body.
var (
	// ErrInvalidURL marks errors from [ValidateURL].
	ErrInvalidURL = errors.New("invalid webhook URL")
	// ErrInvalidPattern marks errors from [ValidatePattern] and
	// [ValidatePatterns].
	ErrInvalidPattern = errors.New("invalid event pattern")
)

// invalidError is a validation failure: Error is the caller-facing message,
// and errors.Is matches its kind.
type invalidError struct {
	kind error
	msg  string
}

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return e.kind }

func invalid(kind error, format string, args ...any) error {
	return &invalidError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// quote returns s quoted for an error message, cut short so that a huge
// input is not echoed back whole.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q", s[:max]+"...")
	}
	return fmt.Sprintf("%q", s)
}

// What an owner sees of an attempt that got no answer: a reason in plain
// words. The owner chose the receiver's host name, but what it resolves to,
// the resolver keyd asks and the rest of the operator's network are not
// theirs to learn, so no reason names an address, a port or a server. The
// error in full goes to the operator's log (Attempt.Detail).
const (
	reasonAddressRefused = "address not allowed: the receiver's host name resolves to an address webhooks are not sent to; the message is not retried"
	reasonNameNotFound   = "name not found: the receiver's host name does not resolve"
	reasonLookupFailed   = "name lookup failed: the receiver's host name could not be resolved"
	reasonLookupTimeout  = "timed out looking up the receiver's host name"
	reasonConnRefused    = "connection refused by the receiver's host"
	reasonUnreachable    = "receiver unreachable: no route to its host"
	reasonTimeout        = "timed out waiting for the receiver"
	reasonClosed         = "connection closed by the receiver before it answered"
	reasonCancelled      = "attempt cancelled: keyd was stopping"
	reasonTLSUntrusted   = "TLS failed: the receiver's certificate is not signed by a trusted authority"
	reasonTLSHostname    = "TLS failed: the receiver's certificate is not valid for its host name"
	reasonTLSInvalid     = "TLS failed: the receiver's certificate is not valid (expired, not yet valid or not for a server)"
	reasonTLS            = "TLS failed: no secure connection could be set up with the receiver"
	reasonNoAnswer       = "no valid answer from the receiver"
)

// revealing matches what must not reach an owner: an IPv4 address, an
// IPv6 address or a port after a colon.
var revealing = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*|:\d+\b`)

// failureReason turns the error of an attempt that got no (whole) answer
// into the owner's reason (see the reason constants). Errors it does not
// know keep their own message only when that names nothing of the network.
func failureReason(err error) string {
	var (
		dnsErr  *net.DNSError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		certBad x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
		record  tls.RecordHeaderError
		alert   tls.AlertError
		netErr  net.Error
		opErr   *net.OpError
	)
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return reasonAddressRefused
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return reasonNameNotFound
		case dnsErr.IsTimeout:
			return reasonLookupTimeout
		}
		return reasonLookupFailed
	case errors.Is(err, syscall.ECONNREFUSED):
		return reasonConnRefused
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return reasonUnreachable
	case errors.Is(err, context.Canceled):
		return reasonCancelled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return reasonTimeout
	case errors.As(err, &unknown):
		return reasonTLSUntrusted
	case errors.As(err, &host):
		return reasonTLSHostname
	case errors.As(err, &certBad):
		return reasonTLSInvalid
	case errors.As(err, &verify), errors.As(err, &record), errors.As(err, &alert):
		return reasonTLS
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return reasonClosed
	case errors.As(err, &opErr):
		return reasonNoAnswer
	}
	if msg := err.Error(); !revealing.MatchString(msg) && len(msg) <= 200 {
		return msg
	}
	return reasonNoAnswer
}
