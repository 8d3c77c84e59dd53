package webhooks

import (
	"errors"
	"net/netip"
)

// ErrBlockedAddress is returned, wrapped in the dial error, when a delivery
// would connect to an address that is refused (see [NewClient]).
var ErrBlockedAddress = errors.New("webhooks: destination address refused")

// addrRule is one row of the table of refused destinations.
type addrRule struct {
	prefix netip.Prefix
	what   string // the kind of address, for error messages
	// always marks destinations that are never a unicast host, refused
	// even when private addresses are allowed.
	always bool
}

// blockedPrefixes lists every destination refused by default. IPv4-mapped
// IPv6 addresses (::ffff:a.b.c.d) are unmapped before the lookup, so each
// IPv4 row covers its mapped form too.
var blockedPrefixes = []addrRule{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (\"this network\")", true},
	{netip.MustParsePrefix("10.0.0.0/8"), "private", false},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)", false},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback", false},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local", false}, // incl. cloud metadata 169.254.169.254
	{netip.MustParsePrefix("172.16.0.0/12"), "private", false},
	{netip.MustParsePrefix("192.168.0.0/16"), "private", false},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast", true},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast", true},
	{netip.MustParsePrefix("::/128"), "unspecified", true},
	{netip.MustParsePrefix("::1/128"), "loopback", false},
	// Deprecated IPv4-compatible addresses (::a.b.c.d); no real host.
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)", false},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)", false},
	{netip.MustParsePrefix("fe80::/10"), "link-local", false},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)", false},
	{netip.MustParsePrefix("ff00::/8"), "multicast", true},
}

// nat64Prefixes embed an IPv4 address in their last 32 bits; a NAT64
// gateway would forward to that address, so it is checked as well.
var nat64Prefixes = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// checkAddr returns nil if a delivery may connect to a, or an error wrapping
// ErrBlockedAddress that says why not. allowPrivate lifts every rule except
// those for addresses that can never be a receiver (unspecified,
// multicast, broadcast).
func checkAddr(a netip.Addr, allowPrivate bool) error {
	if !a.IsValid() {
		return blocked("invalid")
	}
	a = a.WithZone("").Unmap()
	for _, r := range blockedPrefixes {
		if r.prefix.Contains(a) && (r.always || !allowPrivate) {
			return blocked(r.what)
		}
	}
	if a.Is6() && !allowPrivate {
		for _, p := range nat64Prefixes {
			if p.Contains(a) {
				b := a.As16()
				if err := checkAddr(netip.AddrFrom4([4]byte(b[12:])), false); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

type blockedError struct{ what string }

func (e *blockedError) Error() string {
	return "destination address refused: " + e.what
}
func (e *blockedError) Unwrap() error { return ErrBlockedAddress }

func blocked(what string) error { return &blockedError{what: what} }
