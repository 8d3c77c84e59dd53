package store

import (
	"slices"
	"testing"
)

func TestScopeAllowed(t *testing.T) {
	cases := []struct {
		rules []string
		scope string
		want  bool
	}{
		{[]string{"*"}, "optimize", true},
		{[]string{"optimize"}, "optimize", true},
		{[]string{"optimize"}, "convert", false},
		{[]string{"*", "!convert"}, "convert", false},
		{[]string{"*", "!convert"}, "optimize", true},
		{[]string{"!convert", "convert"}, "convert", false}, // a deny wins whatever the order
		{[]string{"!*", "optimize"}, "optimize", false},
		{[]string{}, "optimize", false},
		{nil, "optimize", false},
	}
	for _, c := range cases {
		if got := ScopeAllowed(c.rules, c.scope); got != c.want {
			t.Errorf("ScopeAllowed(%q, %q) = %v, want %v", c.rules, c.scope, got, c.want)
		}
	}
}

func TestRulesWithinWithoutCatalogue(t *testing.T) {
	var c Catalogue
	cases := []struct {
		inner, outer []string
		want         bool
	}{
		{[]string{"*"}, []string{"*"}, true},
		{[]string{"optimize"}, []string{"*"}, true},
		{[]string{"*"}, []string{"optimize"}, false},
		{[]string{"optimize", "convert"}, []string{"optimize"}, false},
		{[]string{"optimize"}, []string{"optimize", "convert"}, true},
		{[]string{"optimize"}, []string{"*", "!optimize"}, false},
		{[]string{"convert"}, []string{"*", "!optimize"}, true},
		{[]string{"*", "!optimize"}, []string{"*", "!optimize"}, true},
		{[]string{"*", "!optimize", "!convert"}, []string{"*", "!optimize"}, true},
		{[]string{"*"}, []string{"*", "!optimize"}, false},
		{[]string{"*", "!convert"}, []string{"*", "!optimize"}, false},
		{[]string{"optimize", "!optimize"}, []string{"convert"}, true}, // allows nothing
		{[]string{"!*"}, []string{"!*"}, true},
		{[]string{"*"}, []string{"!*"}, false},
	}
	for _, tc := range cases {
		if got := c.RulesWithin(tc.inner, tc.outer); got != tc.want {
			t.Errorf("RulesWithin(%q, %q) = %v, want %v", tc.inner, tc.outer, got, tc.want)
		}
	}
}

func TestRulesWithinCatalogue(t *testing.T) {
	c, err := NewCatalogue([]string{"optimize", "convert", "stats"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		inner, outer []string
		want         bool
	}{
		// Over a catalogue, "*" is exactly its names.
		{[]string{"*"}, []string{"optimize", "convert", "stats"}, true},
		{[]string{"*"}, []string{"optimize", "convert"}, false},
		{[]string{"*", "!stats"}, []string{"optimize", "convert"}, true},
		{[]string{"stats"}, []string{"*", "!stats"}, false},
	}
	for _, tc := range cases {
		if got := c.RulesWithin(tc.inner, tc.outer); got != tc.want {
			t.Errorf("RulesWithin(%q, %q) = %v, want %v", tc.inner, tc.outer, got, tc.want)
		}
	}
	if _, err := c.CheckRules([]string{"optimize", "!stats", "*"}); err != nil {
		t.Errorf("known rules refused: %v", err)
	}
	if _, err := c.CheckRules([]string{"resize"}); err == nil {
		t.Error("a scope outside the catalogue was accepted")
	}
	if got, _ := c.CheckRules([]string{"optimize", "optimize"}); len(got) != 1 {
		t.Errorf("duplicates kept: %q", got)
	}
}

func TestCheckRulesWithoutCatalogue(t *testing.T) {
	var c Catalogue
	for _, bad := range []string{"", "!", "a,b", "with space", "!!x", "tab\t", "caf\xc3\xa9", string(make([]byte, 70))} {
		if _, err := c.CheckRules([]string{bad}); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
	if _, err := c.CheckRules([]string{"optimize", "!convert", "*", "api:read", "Images.Resize"}); err != nil {
		t.Errorf("good rules refused: %v", err)
	}
}

func TestValidAliasName(t *testing.T) {
	good := []string{"a", "Client site", "client-site_2", "Café Müller", "x1234567890123456789012345678901234567890123456789"[:50]}
	bad := []string{"", " leading", "trailing ", "slash/name", "semi;colon", "tab\tname", "nul\x00", "\xff\xfe",
		"x12345678901234567890123456789012345678901234567890"}
	for _, n := range good {
		if !ValidAliasName(n) {
			t.Errorf("ValidAliasName(%q) = false, want true", n)
		}
	}
	for _, n := range bad {
		if ValidAliasName(n) {
			t.Errorf("ValidAliasName(%q) = true, want false", n)
		}
	}
}

func TestSiteAllowed(t *testing.T) {
	cases := []struct {
		patterns []string
		site     string
		want     bool
	}{
		{nil, "https://anything.example", true},
		{nil, "", true},
		{[]string{"client.example.com"}, "https://client.example.com/", true},
		{[]string{"client.example.com"}, "https://CLIENT.example.com:8443/blog", true},
		{[]string{"client.example.com"}, "client.example.com", true},
		{[]string{"client.example.com"}, "https://other.example.com", false},
		{[]string{"client.example.com"}, "https://client.example.com.evil.net", false},
		{[]string{"client.example.com"}, "https://evilclient.example.com", false},
		{[]string{"*.example.com"}, "https://shop.example.com", true},
		{[]string{"*.example.com"}, "https://a.b.example.com", true},
		{[]string{"*.example.com"}, "https://example.com", false},
		{[]string{"*.example.com"}, "https://badexample.com", false},
		{[]string{"client.example.com"}, "", false},
		{[]string{"client.example.com"}, "http://localhost:8080", true},
		{[]string{"client.example.com"}, "http://127.0.0.1/", true},
		{[]string{"client.example.com"}, "http://[::1]:8080/", true},
		{[]string{"client.example.com"}, "http://client.local", true},
		{[]string{"client.example.com"}, "http://site.test", true},
		{[]string{"client.example.com"}, "http://dev.localhost", true},
		{[]string{"203.0.113.5"}, "http://203.0.113.5/wp", true},
		{[]string{"203.0.113.5"}, "http://203.0.113.6/wp", false},
		// Written the way browsers and WordPress may write the same site.
		{[]string{"client.example.com"}, "https://client.example.com./", true},
		{[]string{"client.example.com"}, "https://Client.Example.COM.:443/", true},
		{[]string{"client.example.com"}, "http://client.example.com:80/wp", true},
		{[]string{"*.example.com"}, "https://Shop.Example.com./", true},
		{[]string{"xn--bcher-kva.example"}, "https://bücher.example/", true},
		{[]string{"xn--bcher-kva.example"}, "https://BÜCHER.example/", true},
		{[]string{"xn--bcher-kva.example"}, "https://b%C3%BCcher.example/", true},
		{[]string{"xn--bcher-kva.example"}, "https://xn--bcher-kva.example./", true},
		{[]string{"xn--bcher-kva.example"}, "https://bucher.example/", false},
		{[]string{"*.xn--bcher-kva.example"}, "https://shop.bücher.example/", true},
		{[]string{"*.xn--bcher-kva.example"}, "https://bücher.example/", false},
		{[]string{"xn--bcher-kva.example"}, "https://b\xffcher.example/", false},
	}
	for _, c := range cases {
		if got := SiteAllowed(c.patterns, c.site); got != c.want {
			t.Errorf("SiteAllowed(%q, %q) = %v, want %v", c.patterns, c.site, got, c.want)
		}
	}
}

func TestCheckSitePatterns(t *testing.T) {
	got, err := CheckSitePatterns([]string{"Client.Example.com.", "*.example.org", "203.0.113.5", "client.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"client.example.com", "*.example.org", "203.0.113.5"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	idn, err := CheckSitePatterns([]string{"Bücher.Example.", "*.BÜCHER.example", "xn--bcher-kva.example", "ＥＸＡＭＰＬＥ.org"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"xn--bcher-kva.example", "*.xn--bcher-kva.example", "example.org"}; !slices.Equal(idn, want) {
		t.Errorf("international patterns kept as %q, want %q", idn, want)
	}
	for _, bad := range []string{"", "*", "*.com", "http://x.com", "a b.com", "x.com/path", "-x.com", "ex*ample.com", "b\xffcher.example", "bü_cher.example", "*.ü"} {
		if _, err := CheckSitePatterns([]string{bad}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// TestNormalizeSiteFastPathAgrees checks the hand-read http(s) form against
// net/url on the same inputs.
func TestNormalizeSiteFastPathAgrees(t *testing.T) {
	for _, s := range []string{"https://Example.com", "https://example.com/", "http://example.com:8080/blog/", "https://a.b-c.example/x/y//",
		"https://example.com/wp_1/~me", "http://[::1]:8080/", "https://user@example.com/", "https://example.com/a%20b", "https://example.com/?q=1",
		"example.com/blog", "https://", "http:///path", "https://EXAMPLE.com:443/Path/", "http://client.example.com:junk/", "http://a:b:80/",
		"https://example.com:80/", "http://example.com:443/", "https://example.com./", "https://bücher.example/", "https://:443/", "http://example.com:/"} {
		viaURL := fuzzNormalizeViaURL(s)
		if got := NormalizeSite(s); got != viaURL {
			t.Errorf("NormalizeSite(%q) = %q, net/url gives %q", s, got, viaURL)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":           "example.com",
		"Example.COM":           "example.com",
		"example.com.":          "example.com",
		"bücher.example":        "xn--bcher-kva.example",
		"BÜCHER.Example.":       "xn--bcher-kva.example",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"XN--BCHER-KVA.example": "xn--bcher-kva.example",
		"ＥＸＡＭＰＬＥ.com":           "example.com", // full-width letters, as browsers map them
		"mañana.com":            "xn--maana-pta.com",
		"b\xffcher.example":     "", // not UTF-8
		"bü cher.example":       "", // not a host name
		"":                      "",
	} {
		if got := CanonicalHost(in); got != want {
			t.Errorf("CanonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSiteMatchingAllocatesNothingForPlainSites keeps validation of a key
// bound to sites free of allocations when the site's URL is plain lower-case
// ASCII, as nearly every site's is.
func TestSiteMatchingAllocatesNothingForPlainSites(t *testing.T) {
	patterns := []string{"other.example", "*.example.com", "client.example.org"}
	for _, site := range []string{"https://client.example.org/", "https://shop.example.com:8443/blog", "http://nothere.example/"} {
		if n := testing.AllocsPerRun(100, func() { SiteAllowed(patterns, site) }); n != 0 {
			t.Errorf("SiteAllowed(%q) allocates %v times", site, n)
		}
	}
}
