package webhooks

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLLength is the longest endpoint URL accepted, in bytes.
const MaxURLLength = 2048

// ValidateURL checks an endpoint URL when it is created or changed. It must
// be an absolute http or https URL of at most [MaxURLLength] bytes, with a
// host and no user name or password (credentials in URLs end up in logs).
// A host that is a literal IP address is refused when it is loopback,
// private, link-local, shared (CGNAT) or otherwise not a public unicast
// address, including IPv4-mapped IPv6 forms, unless allowPrivate is set;
// "localhost" and names under ".localhost" likewise. Hosts that look like an
// IPv4 address in a legacy form (0x7f.1, 2130706433, 0177.0.0.1, 127.1) are
// always refused: resolvers disagree on what they mean.
//
// A host name is only resolved when a delivery connects, and [NewClient]
// checks the address there, so a name that resolves to a private address
// passes here and is refused at connect time.
//
// Errors wrap [ErrInvalidURL] and their message can be shown to the caller.
func ValidateURL(raw string, allowPrivate bool) error {
	if raw == "" {
		return invalid(ErrInvalidURL, "url must not be empty")
	}
	if len(raw) > MaxURLLength {
		return invalid(ErrInvalidURL, "url must be at most %d characters long", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the raw URL is echoed by the caller if at all
		}
		return invalid(ErrInvalidURL, "url is not a valid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid(ErrInvalidURL, "url must start with http:// or https://")
	}
	if u.Opaque != "" {
		return invalid(ErrInvalidURL, "url must be of the form %s://host/path", u.Scheme)
	}
	if u.User != nil {
		return invalid(ErrInvalidURL, "url must not contain a user name or password")
	}
	host := u.Hostname()
	if host == "" {
		return invalid(ErrInvalidURL, "url must include a host name")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid(ErrInvalidURL, "url port must be between 1 and 65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return invalid(ErrInvalidURL, "url has an empty port")
	}

	if strings.HasPrefix(u.Host, "[") { // IPv6 literal
		a, err := netip.ParseAddr(host)
		if err != nil {
			return invalid(ErrInvalidURL, "url host %s is not a valid IPv6 address", quote(host))
		}
		if a.Zone() != "" {
			return invalid(ErrInvalidURL, "url host must not carry an IPv6 zone")
		}
		return checkURLAddr(host, a, allowPrivate)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return checkURLAddr(host, a, allowPrivate)
	}
	if endsInNumber(host) {
		return invalid(ErrInvalidURL, "url host %s is neither a host name nor an IPv4 address in dotted decimal form", quote(host))
	}
	if !validHostName(host) {
		return invalid(ErrInvalidURL, "url host %s is not a valid host name", quote(host))
	}
	if !allowPrivate {
		h := strings.ToLower(strings.TrimSuffix(host, "."))
		if h == "localhost" || strings.HasSuffix(h, ".localhost") {
			return invalid(ErrInvalidURL, "url host %s is not allowed: loopback name", quote(host))
		}
	}
	return nil
}

func checkURLAddr(host string, a netip.Addr, allowPrivate bool) error {
	var be *blockedError
	if err := checkAddr(a, allowPrivate); errors.As(err, &be) {
		return invalid(ErrInvalidURL, "url host %s is not allowed: %s address", host, be.what)
	}
	return nil
}

// endsInNumber reports whether the last label of host is a number in the
// sense of the WHATWG URL standard (decimal, or hex with 0x), which is when
// browsers and inet_aton read the whole host as an IPv4 address.
func endsInNumber(host string) bool {
	labels := strings.Split(host, ".")
	if len(labels) > 1 && labels[len(labels)-1] == "" {
		labels = labels[:len(labels)-1]
	}
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if hex, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// validHostName reports whether h is a DNS name as a URL may carry it:
// labels of letters, digits, '-' and '_' (seen in real names), 1 to 63
// bytes each, 253 bytes in all, an optional final dot. Internationalised
// names must be given in their xn-- form.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
