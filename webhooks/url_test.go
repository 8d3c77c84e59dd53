package webhooks

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestValidateURL(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", MaxURLLength-len("https://example.com/"))
	tests := []struct {
		url string
		// errPart is a piece of the error with private addresses refused;
		// "" means the URL is accepted.
		errPart string
		// privateOK says whether the URL is accepted when private
		// addresses are allowed.
		privateOK bool
	}{
		{"https://example.com/webhooks/keyd", "", true},
		{"http://example.com", "", true},
		{"HTTPS://EXAMPLE.COM/Path?q=1&r=2#frag", "", true},
		{"https://example.com:8443/hook", "", true},
		{"https://my_host.example.com/", "", true},
		{"https://example.com./", "", true},
		{"https://xn--bcher-kva.example/", "", true},
		{"https://8.8.8.8/hook", "", true},
		{"https://[2001:4860:4860::8888]/hook", "", true},
		{"https://1e100.net/", "", true},
		{long, "", true},

		{"", "must not be empty", false},
		{long + "a", "at most 2048", false},
		{"ftp://example.com/", "http:// or https://", false},
		{"file:///etc/passwd", "http:// or https://", false},
		{"javascript:alert(1)", "http:// or https://", false},
		{"example.com/hook", "http:// or https://", false},
		{"//example.com/hook", "http:// or https://", false},
		{"http:example.com", "of the form", false},
		{"https://user:pass@example.com/", "user name or password", false},
		{"https://user@example.com/", "user name or password", false},
		{"https://:@example.com/", "user name or password", false},
		{"https:///path", "must include a host", false},
		{"https://:8080/", "must include a host", false},
		{"https://example.com:0/", "port", false},
		{"https://example.com:65536/", "port", false},
		{"https://example.com:/", "empty port", false},
		{"https://example.com:http/", "not a valid URL", false},
		{"https://exa mple.com/", "not a valid URL", false},
		{"https://example.com/\x00", "not a valid URL", false},
		{"https://-bad-.example.com/", "not a valid host name", false},
		{"https://exa!mple.com/", "not a valid host name", false},
		{"https://a..b/", "not a valid host name", false},
		{"https://bücher.example/", "not a valid host name", false},
		{"https://[fe80::1%25eth0]/", "zone", false},
		{"https://[not:an:ip]/", "not a valid", false},
		{"http://[127.0.0.1]/", "not a valid URL", false},
		{"http://ex%61mple.com/", "not a valid URL", false},
		{"http://a.com\\@127.0.0.1/", "not a valid URL", false},
		{"http://example.com@127.0.0.1/", "user name or password", false},
		{"http://127.0.0.1#@example.com/", "loopback", true},

		// Literal addresses refused unless private ones are allowed.
		{"http://127.0.0.1:8080/hook", "loopback", true},
		{"http://127.255.255.254/", "loopback", true},
		{"http://[::1]/", "loopback", true},
		{"http://10.1.2.3/", "private", true},
		{"http://172.16.0.1/", "private", true},
		{"http://172.31.255.255/", "private", true},
		{"http://192.168.1.1/", "private", true},
		{"http://100.64.0.1/", "carrier-grade NAT", true},
		{"http://169.254.169.254/latest/meta-data/", "link-local", true},
		{"http://[fe80::1]/", "link-local", true},
		{"http://[fd00::1]/", "unique local", true},
		{"http://[fc00::1]/", "unique local", true},
		{"http://[fec0::1]/", "site-local", true},
		{"http://[::ffff:127.0.0.1]/", "loopback", true},
		{"http://[::ffff:7f00:1]/", "loopback", true},
		{"http://[::ffff:10.0.0.1]/", "private", true},
		{"http://[::ffff:169.254.169.254]/", "link-local", true},
		{"http://[::127.0.0.1]/", "IPv4-compatible", true},
		{"http://[64:ff9b::10.0.0.1]/", "private", true},
		{"http://[64:ff9b::127.0.0.1]/", "loopback", true},
		{"http://localhost:8080/", "loopback name", true},
		{"http://LOCALHOST./", "loopback name", true},
		{"http://api.localhost/", "loopback name", true},
		// Never a receiver, whatever the setting.
		{"http://0.0.0.0/", "unspecified", false},
		{"http://[::]/", "unspecified", false},
		{"http://[::ffff:0.0.0.0]/", "unspecified", false},
		{"http://224.0.0.1/", "multicast", false},
		{"http://[ff02::1]/", "multicast", false},
		{"http://255.255.255.255/", "broadcast", false},
		// Legacy IPv4 spellings are never accepted.
		{"http://0x7f.1/", "dotted decimal", false},
		{"http://0x7f000001/", "dotted decimal", false},
		{"http://2130706433/", "dotted decimal", false},
		{"http://127.1/", "dotted decimal", false},
		{"http://0177.0.0.1/", "dotted decimal", false},
		{"http://127.000.000.001/", "dotted decimal", false},
		{"http://8.8.8.010/", "dotted decimal", false},
		{"http://example.0x10/", "dotted decimal", false},
		{"http://example.123./", "dotted decimal", false},
	}
	for _, tt := range tests {
		t.Run(quote(tt.url), func(t *testing.T) {
			err := ValidateURL(tt.url, false)
			if tt.errPart == "" {
				if err != nil {
					t.Fatalf("ValidateURL(private refused) = %v, want nil", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("ValidateURL(private refused) = %v, want error mentioning %q", err, tt.errPart)
				}
				if !errors.Is(err, ErrInvalidURL) {
					t.Fatalf("error %v does not wrap ErrInvalidURL", err)
				}
				if strings.HasPrefix(err.Error(), "webhooks:") || len(err.Error()) > 200 {
					t.Fatalf("error %q is not fit to show to an API caller", err)
				}
			}
			err = ValidateURL(tt.url, true)
			if tt.privateOK != (err == nil) {
				t.Fatalf("ValidateURL(private allowed) = %v, want ok=%v", err, tt.privateOK)
			}
		})
	}
}

// FuzzValidateURL checks that whatever ValidateURL accepts meets every rule
// it promises, and that allowing private addresses never refuses more.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hook", "http://127.0.0.1:8080/", "http://[::ffff:127.0.0.1]/",
		"http://0x7f.1/", "https://user:pw@example.com/", "http://localhost/", "ftp://x/",
		"http://[fe80::1%25eth0]/", "http://[64:ff9b::a00:1]/", "http://2130706433", "",
		"https://example.com:99999/", "http://a..b/", "http://example.com./",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := ValidateURL(raw, false)
		errPrivate := ValidateURL(raw, true)
		if err == nil && errPrivate != nil {
			t.Fatalf("accepted with private refused but not with private allowed: %v", errPrivate)
		}
		for _, e := range []error{err, errPrivate} {
			if e != nil && !errors.Is(e, ErrInvalidURL) {
				t.Fatalf("error %v does not wrap ErrInvalidURL", e)
			}
		}
		if errPrivate != nil {
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("accepted %q that url.Parse rejects: %v", raw, perr)
		}
		if len(raw) > MaxURLLength || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Hostname() == "" {
			t.Fatalf("accepted %q breaking a basic rule", raw)
		}
		if err != nil {
			return
		}
		if a, aerr := netip.ParseAddr(u.Hostname()); aerr == nil {
			a = a.Unmap()
			if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() ||
				netip.MustParsePrefix("100.64.0.0/10").Contains(a) {
				t.Fatalf("accepted %q with a refused address while private addresses are refused", raw)
			}
		}
	})
}
