package store

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Scope rules: "name" allows one scope, "*" allows every scope, "!name"
// denies one, and a deny always wins. A key's rules are a small list.

// A scope name is 1 to 64 printable ASCII characters other than a comma (the
// index keeps rules comma-joined) and not starting with '!' or being '*',
// which are rule syntax.
func validScopeName(name string) bool {
	if name == "" || len(name) > 64 || name == "*" || name[0] == '!' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == ',' {
			return false
		}
	}
	return true
}

// Catalogue is the operator's list of scope names. When it is empty any
// well-formed name is accepted.
type Catalogue struct{ names map[string]bool }

// NewCatalogue checks and builds a catalogue from scope names.
func NewCatalogue(names []string) (Catalogue, error) {
	c := Catalogue{names: map[string]bool{}}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !validScopeName(n) {
			return c, fmt.Errorf("scope name %q: use 1 to 64 printable characters without spaces, commas, a leading ! or a lone *", n)
		}
		c.names[n] = true
	}
	return c, nil
}

// Names lists the catalogue, sorted.
func (c Catalogue) Names() []string {
	out := make([]string, 0, len(c.names))
	for n := range c.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Known reports whether name may be used: any well-formed name without a
// catalogue, only the catalogue's names with one.
func (c Catalogue) Known(name string) bool {
	if len(c.names) == 0 {
		return validScopeName(name)
	}
	return c.names[name]
}

// maxRules bounds a key's scope rules and allowed sites.
const maxRules = 100

// CheckRules validates a list of scope rules against the catalogue and
// returns them de-duplicated in their given order.
func (c Catalogue) CheckRules(rules []string) ([]string, error) {
	if len(rules) > maxRules {
		return nil, invalidField("scopes", fmt.Sprintf("at most %d rules", maxRules))
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		name := strings.TrimPrefix(r, "!")
		if name != "*" && !c.Known(name) {
			if len(c.names) > 0 {
				return nil, invalidField("scopes", fmt.Sprintf("unknown scope %q (known: %s)", r, strings.Join(c.Names(), ", ")))
			}
			return nil, invalidField("scopes", fmt.Sprintf("%q is not a scope rule: use name, * or !name", r))
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// ScopeAllowed reports whether rules allow scope.
func ScopeAllowed(rules []string, scope string) bool {
	allowed := false
	for _, r := range rules {
		switch {
		case r == "!"+scope || r == "!*":
			return false
		case r == "*" || r == scope:
			allowed = true
		}
	}
	return allowed
}

// scopeSet is what a list of rules allows: a finite set of names, or every
// name except some.
type scopeSet struct {
	cofinite bool
	names    map[string]bool // allowed names if finite, denied names if cofinite
}

func setOf(rules []string) scopeSet {
	s := scopeSet{names: map[string]bool{}}
	denied := map[string]bool{}
	for _, r := range rules {
		switch {
		case r == "!*":
			return scopeSet{names: map[string]bool{}}
		case strings.HasPrefix(r, "!"):
			denied[r[1:]] = true
		case r == "*":
			s.cofinite = true
		}
	}
	if s.cofinite {
		s.names = denied
		return s
	}
	for _, r := range rules {
		if !strings.HasPrefix(r, "!") && !denied[r] {
			s.names[r] = true
		}
	}
	return s
}

// RulesWithin reports whether everything inner allows, outer allows too.
// With a catalogue the sets are compared over its names; without one, over
// every possible name.
func (c Catalogue) RulesWithin(inner, outer []string) bool {
	if len(c.names) > 0 {
		for n := range c.names {
			if ScopeAllowed(inner, n) && !ScopeAllowed(outer, n) {
				return false
			}
		}
		return true
	}
	in, out := setOf(inner), setOf(outer)
	switch {
	case !in.cofinite && !out.cofinite:
		for n := range in.names {
			if !out.names[n] {
				return false
			}
		}
		return true
	case !in.cofinite && out.cofinite:
		for n := range in.names {
			if out.names[n] {
				return false
			}
		}
		return true
	case in.cofinite && !out.cofinite:
		return false // every name but a few is never inside a finite list
	default:
		for n := range out.names {
			if !in.names[n] {
				return false
			}
		}
		return true
	}
}

// Site patterns: a host name ("example.com"), a wildcard for its subdomains
// ("*.example.com"), or an IP address. Names are kept as CanonicalHost gives
// them, so "Bücher.Example." is kept as "xn--bcher-kva.example".
var hostLabelPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckSitePatterns validates and normalises allowed_sites entries.
func CheckSitePatterns(patterns []string) ([]string, error) {
	if len(patterns) > maxRules {
		return nil, invalidField("allowed_sites", fmt.Sprintf("at most %d sites", maxRules))
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		norm, ok := normalizeSitePattern(p)
		if !ok {
			return nil, invalidField("allowed_sites", fmt.Sprintf("%q is not a host name such as example.com or *.example.com", p))
		}
		if !seen[norm] {
			seen[norm] = true
			out = append(out, norm)
		}
	}
	return out, nil
}

func normalizeSitePattern(p string) (string, bool) {
	p = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(p)), ".")
	if ip := net.ParseIP(strings.Trim(p, "[]")); ip != nil {
		return ip.String(), true
	}
	wildcard, host := "", p
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		wildcard, host = "*.", rest
	}
	if host = CanonicalHost(host); len(host) == 0 || len(host) > 253 {
		return "", false
	}
	p = wildcard + host
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !hostLabelPattern.MatchString(l) {
			return "", false
		}
	}
	if strings.HasPrefix(p, "*.") && len(labels) < 2 {
		return "", false // "*.com" would bind a key to a whole top-level domain
	}
	return p, true
}

// CanonicalHost is a host name as keyd keeps and compares it, the way
// browsers read it: lower case, without the trailing dot of a fully
// qualified name, and a name that is not plain ASCII in its ASCII (xn--)
// form, so "Bücher.example." and "xn--bcher-kva.example" are one host. It
// returns "" for a name that is not a valid international one. A name
// already in that form (what nearly every site sends) is returned as it is,
// without allocating.
func CanonicalHost(host string) string {
	ascii, plain := true, true
	for i := 0; i < len(host); i++ {
		switch c := host[i]; {
		case c >= 0x80:
			ascii, plain = false, false
		case 'A' <= c && c <= 'Z':
			plain = false
		}
	}
	if plain && !strings.HasSuffix(host, ".") {
		return host
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || strings.HasSuffix(host, ".") {
		return "" // "." or a name ending in an empty label
	}
	if ascii {
		return strings.ToLower(host)
	}
	if !utf8.ValidString(host) {
		return ""
	}
	// UTS 46 mapping, as browsers do it: case folding, width and
	// compatibility forms, then Punycode.
	a, err := idna.Lookup.ToASCII(host)
	if err != nil || strings.HasSuffix(a, ".") {
		return ""
	}
	return a
}

// SiteHost extracts the host name from a site's home URL
// ("https://Bücher.Example.:8443/blog" -> "xn--bcher-kva.example"); "" when
// there is none. It is on validation's path for keys bound to sites, so a
// plain http(s) URL is read without allocating.
func SiteHost(site string) string {
	site = strings.TrimSpace(site)
	if _, rest, ok := plainSiteURL(site); ok {
		hostport, _, _ := strings.Cut(rest, "/")
		if host, port, _ := strings.Cut(hostport, ":"); host != "" && allDigits(port) {
			return CanonicalHost(host)
		}
	}
	n := NormalizeSite(site)
	if n == "" {
		return ""
	}
	hostport, _, _ := strings.Cut(n, "/")
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = host
	}
	return strings.TrimSuffix(strings.Trim(hostport, "[]"), ".")
}

// isLocalDevHost reports hosts a developer's local copy of a site runs on;
// they are always allowed so a client's key can be tried locally.
func isLocalDevHost(host string) bool {
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return strings.HasSuffix(host, ".local") || strings.HasSuffix(host, ".test") || strings.HasSuffix(host, ".localhost")
}

// SiteAllowed reports whether a site (home URL) may use a key bound to
// patterns. A key without patterns works from any site.
func SiteAllowed(patterns []string, site string) bool {
	if len(patterns) == 0 {
		return true
	}
	host := SiteHost(site)
	if host == "" {
		return false
	}
	if isLocalDevHost(host) {
		return true
	}
	// Only what may be an address is parsed: a failed parse allocates its
	// error, and names are nearly every site.
	if strings.Contains(host, ":") || strings.Trim(host, "0123456789.") == "" {
		if ip := net.ParseIP(host); ip != nil {
			host = ip.String()
		}
	}
	for _, p := range patterns {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}
