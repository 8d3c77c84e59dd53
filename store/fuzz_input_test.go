package store

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Fuzz targets for the parsers in store that take outside input: scope rules
// (alias and key bodies, validate's scope) and site host names (allowed_sites,
// validate's site). Their seeds run under plain go test.

// fuzzSplitRules turns a comma-separated fuzz string into rules; "" is none.
func fuzzSplitRules(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// fuzzFreshScope is a scope name that none of the lists mention.
func fuzzFreshScope(lists ...[]string) string {
	for i := 0; ; i++ {
		name := "fresh" + strconv.Itoa(i)
		used := false
		for _, l := range lists {
			if slices.Contains(l, name) || slices.Contains(l, "!"+name) {
				used = true
			}
		}
		if !used {
			return name
		}
	}
}

// FuzzScopeRules checks CheckRules, ScopeAllowed and RulesWithin against each
// other: what CheckRules accepts is made of known names only, its clean-up
// changes no answer, a deny always wins, the order of rules does not matter,
// and RulesWithin(inner, outer) holds exactly when every scope inner allows
// is allowed by outer too (over the catalogue, or without one over every
// name the rules mention plus one they do not: all unmentioned names behave
// alike).
func FuzzScopeRules(f *testing.F) {
	for _, s := range [][4]string{
		{"*", "*", "optimize", ""},
		{"optimize", "*,!optimize", "optimize", ""},
		{"*,!convert", "*,!optimize", "convert", ""},
		{"*,!optimize,!convert", "*,!optimize", "stats", ""},
		{"optimize,!optimize", "convert", "optimize", ""},
		{"!*", "!*", "x", ""},
		{"*", "!*", "x", ""},
		{"", "optimize", "optimize", ""},
		{"optimize,optimize", "optimize", "optimize", ""},
		{"*", "optimize,convert,stats", "stats", "optimize,convert,stats"},
		{"*,!stats", "optimize,convert", "stats", "optimize,convert,stats"},
		{"stats", "*,!stats", "stats", "optimize,convert,stats"},
		{"unknown", "*", "unknown", "optimize"},
		{"!", "*", "", ""},
		{"!!x", "*", "!x", ""},
		{"a b", "*", "a b", ""},
		{"\x00", "*", "\x00", ""},
		{"\xff", "*", "\xff", ""},
		{strings.Repeat("s", 65), "*", strings.Repeat("s", 65), ""},
		{"*,*,!*", "*", "*", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, innerRaw, outerRaw, scope, catRaw string) {
		cat, err := NewCatalogue(strings.Split(catRaw, ","))
		if err != nil {
			cat = Catalogue{}
		}
		inner, outer := fuzzSplitRules(innerRaw), fuzzSplitRules(outerRaw)

		// What CheckRules accepts is rules over known names, de-duplicated,
		// in their first order, and allowing exactly what the input allows.
		checkedInner, errInner := cat.CheckRules(inner)
		checkedOuter, errOuter := cat.CheckRules(outer)
		for _, pair := range []struct {
			in, out []string
			err     error
		}{{inner, checkedInner, errInner}, {outer, checkedOuter, errOuter}} {
			if pair.err != nil {
				if !strings.Contains(pair.err.Error(), "scopes") {
					t.Fatalf("CheckRules(%q) error %v does not name the field", pair.in, pair.err)
				}
				continue
			}
			seen := map[string]bool{}
			for _, r := range pair.out {
				if seen[r] {
					t.Fatalf("CheckRules(%q) = %q keeps a duplicate", pair.in, pair.out)
				}
				seen[r] = true
				name := strings.TrimPrefix(r, "!")
				if name != "*" && !cat.Known(name) {
					t.Fatalf("CheckRules(%q) accepted %q, an unknown name", pair.in, r)
				}
				if strings.ContainsAny(name, ", \x00") || name == "" {
					t.Fatalf("CheckRules(%q) accepted %q, not a scope rule", pair.in, r)
				}
			}
			if len(pair.in) > maxRules {
				t.Fatalf("CheckRules accepted %d rules", len(pair.in))
			}
			for _, s := range append(slices.Clone(pair.in), scope) {
				s = strings.TrimPrefix(s, "!")
				if ScopeAllowed(pair.out, s) != ScopeAllowed(pair.in, s) {
					t.Fatalf("CheckRules(%q) = %q changes the answer for %q", pair.in, pair.out, s)
				}
			}
		}

		// ScopeAllowed: a deny wins, order does not matter, nothing allows nothing.
		allowed := ScopeAllowed(inner, scope)
		if allowed && (slices.Contains(inner, "!"+scope) || slices.Contains(inner, "!*")) {
			t.Fatalf("ScopeAllowed(%q, %q) ignores a deny", inner, scope)
		}
		if allowed && !slices.Contains(inner, "*") && !slices.Contains(inner, scope) {
			t.Fatalf("ScopeAllowed(%q, %q) allows what no rule names", inner, scope)
		}
		reversed := slices.Clone(inner)
		slices.Reverse(reversed)
		if ScopeAllowed(reversed, scope) != allowed {
			t.Fatalf("ScopeAllowed(%q, %q) depends on the order of rules", inner, scope)
		}

		if errInner != nil || errOuter != nil {
			return
		}
		// RulesWithin agrees with ScopeAllowed over every name that matters.
		var universe []string
		if len(cat.names) > 0 {
			universe = cat.Names()
		} else {
			for _, r := range append(slices.Clone(checkedInner), checkedOuter...) {
				if name := strings.TrimPrefix(r, "!"); name != "*" {
					universe = append(universe, name)
				}
			}
			universe = append(universe, fuzzFreshScope(checkedInner, checkedOuter))
		}
		want := true
		for _, n := range universe {
			if ScopeAllowed(checkedInner, n) && !ScopeAllowed(checkedOuter, n) {
				want = false
			}
		}
		if got := cat.RulesWithin(checkedInner, checkedOuter); got != want {
			t.Fatalf("RulesWithin(%q, %q) = %v, but over %q ScopeAllowed says %v", checkedInner, checkedOuter, got, universe, want)
		}
		if !cat.RulesWithin(checkedInner, checkedInner) {
			t.Fatalf("RulesWithin(%q, itself) = false", checkedInner)
		}
		if cat.Known(scope) && cat.RulesWithin(checkedInner, checkedOuter) && ScopeAllowed(checkedInner, scope) && !ScopeAllowed(checkedOuter, scope) {
			t.Fatalf("%q within %q, yet %q is allowed only by the first", checkedInner, checkedOuter, scope)
		}
	})
}

// fuzzNormalizeViaURL is NormalizeSite done entirely with net/url and
// idna, the reference the hand-written fast path must agree with.
func fuzzNormalizeViaURL(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if host == "" || strings.HasSuffix(host, ".") {
		return ""
	}
	isASCII := true
	for _, r := range host {
		if r >= 0x80 {
			isASCII = false
		}
	}
	switch {
	case isASCII:
		host = strings.ToLower(host)
	case !utf8.ValidString(host):
		return ""
	default:
		if host, err = idna.Lookup.ToASCII(host); err != nil {
			return ""
		}
	}
	if host == "" || strings.HasSuffix(host, ".") {
		return ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	switch port := u.Port(); {
	case port == "", strings.EqualFold(u.Scheme, "http") && port == "80", strings.EqualFold(u.Scheme, "https") && port == "443":
	default:
		host += ":" + port
	}
	return host + strings.TrimRight(u.EscapedPath(), "/")
}

// FuzzSiteMatching checks the site rules: NormalizeSite's fast path agrees
// with net/url and its output is stable, SiteHost is lower-case and stable,
// CheckSitePatterns only accepts host names or IPs and is idempotent, a
// pattern matches its own host however a browser may write it (case, a
// trailing dot, the default port, the Unicode form of an international
// name), a wildcard never matches its bare domain, and a key without
// patterns works from any site.
func FuzzSiteMatching(f *testing.F) {
	for _, s := range [][2]string{
		{"client.example.com", "https://client.example.com/"},
		{"client.example.com", "https://CLIENT.example.com:8443/blog"},
		{"*.example.com", "https://shop.example.com"},
		{"*.example.com", "https://example.com"},
		{"*.example.com", "https://badexample.com"},
		{"client.example.com", "https://client.example.com.evil.net"},
		{"203.0.113.5", "http://203.0.113.5/wp"},
		{"[2001:db8::1]", "http://[2001:db8::1]:8080/"},
		{"Client.Example.com.", "client.example.com."},
		{"*.com", "https://x.com"},
		{"x.com/path", "x.com/path"},
		{"client.example.com", "http://localhost:8080"},
		{"client.example.com", "http://client.example.com:junk/"},
		{"client.example.com", "http://user@client.example.com/"},
		{"client.example.com", "https://example.com/a%20b?q=1#f"},
		{"a", "http://a/x://y"},
		{"a", "HTTP://A/"},
		{"", ""},
		{"\x00", "\x00"},
		{"\xff.com", "http://\xff.com/"},
		{strings.Repeat("a", 64) + ".com", "http://" + strings.Repeat("a", 64) + ".com"},
		{"bücher.example", "https://xn--bcher-kva.example/"},
		{"xn--bcher-kva.example", "https://BÜCHER.example.:443/"},
		{"*.bücher.example", "http://shop.b%C3%BCcher.example:80/"},
		{"example.com", "https://example.com:80/"},
		{"xn--zz.example", "https://xn--zz.example/"},
		{"a..", ".."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, site string) {
		n := NormalizeSite(site)
		if ref := fuzzNormalizeViaURL(site); n != ref {
			t.Fatalf("NormalizeSite(%q) = %q, net/url gives %q", site, n, ref)
		}
		host := SiteHost(site)
		if host != strings.ToLower(host) {
			t.Fatalf("SiteHost(%q) = %q is not lower-case", site, host)
		}
		// Re-reading the normal form finds the same host (IPv6 hosts aside:
		// unbracketed they do not read back as a URL).
		if n != "" && !strings.Contains(host, ":") && SiteHost("http://"+n) != host {
			t.Fatalf("SiteHost(%q) = %q but SiteHost of its normal form %q = %q", site, host, n, SiteHost("http://"+n))
		}
		if !SiteAllowed(nil, site) {
			t.Fatalf("a key without allowed sites refused %q", site)
		}

		got, err := CheckSitePatterns([]string{pattern})
		if err != nil {
			return
		}
		if len(got) != 1 {
			t.Fatalf("CheckSitePatterns(%q) = %q", pattern, got)
		}
		p := got[0]
		if again, err := CheckSitePatterns(got); err != nil || len(again) != 1 || again[0] != p {
			t.Fatalf("CheckSitePatterns is not idempotent: %q -> %q -> %q (%v)", pattern, p, again, err)
		}
		if p != strings.ToLower(p) || strings.ContainsAny(p, "/?#@ \x00") || p == "" {
			t.Fatalf("CheckSitePatterns(%q) accepted %q", pattern, p)
		}
		// A pattern's own host is allowed; a wildcard's bare domain is not,
		// unless it is a local development host (always allowed).
		bare := strings.TrimPrefix(p, "*.")
		own := "https://" + bare + "/"
		if strings.Contains(bare, ":") {
			own = "https://[" + bare + "]/"
		}
		if bare == p && !SiteAllowed(got, own) {
			t.Fatalf("pattern %q refuses its own site %q", p, own)
		}
		if bare == p && !strings.Contains(bare, ":") {
			variants := []string{"https://" + strings.ToUpper(bare) + "/", "https://" + bare + "./", "https://" + bare + ":443/", "http://" + bare + ":80/wp"}
			if u, err := idna.Lookup.ToUnicode(bare); err == nil {
				variants = append(variants, "https://"+u+"/")
			}
			for _, v := range variants {
				if !SiteAllowed(got, v) {
					t.Fatalf("pattern %q refuses %q, its own site written another way", p, v)
				}
			}
		}
		if bare != p {
			if !SiteAllowed(got, "https://www."+bare+"/") {
				t.Fatalf("pattern %q refuses a subdomain", p)
			}
			if SiteAllowed(got, own) && !isLocalDevHost(SiteHost(own)) {
				t.Fatalf("wildcard %q allows its bare domain %q", p, own)
			}
		}
		// Whatever is allowed is the pattern's host, a subdomain of a
		// wildcard, or a local development host.
		if SiteAllowed(got, site) {
			h := host
			if h == "" {
				t.Fatalf("pattern %q allowed %q, which names no host", p, site)
			}
			ok := isLocalDevHost(h) || h == bare || (bare != p && strings.HasSuffix(h, "."+bare))
			if !ok {
				if ip := parseIPForFuzz(h); ip != "" && ip == p {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("pattern %q allowed %q (host %q)", p, site, h)
			}
		}
	})
}

// parseIPForFuzz is an IP host in the form patterns keep; "" for a name.
func parseIPForFuzz(h string) string {
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return ""
}
