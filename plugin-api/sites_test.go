package pluginapi

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// TestSitesMatchAsBrowsersWriteThem checks, through the real router, that
// allowed_sites are kept in their normal form (lower case, no trailing dot,
// international names as xn--) and that validate matches a site however a
// browser or WordPress writes its home URL.
func TestSitesMatchAsBrowsersWriteThem(t *testing.T) {
	a := newOwnerAPI(t)
	_, primary := a.accountWith("pro", 100)
	code, out := a.do("POST", "/v1/aliases", primary, map[string]any{"name": "shop",
		"allowed_sites": []string{"Bücher.Example.", "*.Shop.Example.COM", "xn--bcher-kva.example"}})
	if code != http.StatusCreated {
		t.Fatalf("create alias: %d %v", code, out)
	}
	alias := out["key"].(string)
	aliasID := out["alias"].(map[string]any)["id"].(string)
	want := []any{"xn--bcher-kva.example", "*.shop.example.com"}
	if got := out["alias"].(map[string]any)["allowed_sites"].([]any); !slices.Equal(got, want) {
		t.Errorf("create answer allowed_sites = %v, want %v", got, want)
	}
	if got := a.keysByID(primary)[aliasID]["allowed_sites"].([]any); !slices.Equal(got, want) {
		t.Errorf("GET /v1/keys allowed_sites = %v, want %v", got, want)
	}

	for site, ok := range map[string]bool{
		"https://bücher.example/":                 true,
		"https://BÜCHER.example.:443/":            true,
		"https://xn--bcher-kva.example/":          true,
		"http://XN--BCHER-KVA.EXAMPLE.:80/shop":   true,
		"https://b%C3%BCcher.example/":            true,
		"https://Store.SHOP.example.com./":        true,
		"https://bucher.example/":                 false,
		"https://shop.example.com/":               false, // a wildcard's bare domain
		"https://xn--bcher-kva.example.evil.net/": false,
	} {
		code, out := a.validate(url.Values{"key": {alias}, "site": {site}}.Encode())
		if got := code == http.StatusOK; got != ok {
			t.Errorf("validate from %q: %d %v, want allowed=%v", site, code, out, ok)
		} else if !ok && errorCode(out) != "SITE_NOT_ALLOWED" {
			t.Errorf("validate from %q: %v, want SITE_NOT_ALLOWED", site, out)
		}
	}

	code, out = a.do("PATCH", "/v1/aliases/"+aliasID, primary, map[string]any{"allowed_sites": []string{"MAÑANA.com."}})
	if got, _ := out["allowed_sites"].([]any); code != http.StatusOK || !slices.Equal(got, []any{"xn--maana-pta.com"}) {
		t.Errorf("PATCH allowed_sites: %d %v, want [xn--maana-pta.com]", code, out)
	}
	code, out = a.do("PATCH", "/v1/aliases/"+aliasID, primary, map[string]any{"allowed_sites": []string{"bü cher.example"}})
	if code != http.StatusBadRequest || errorCode(out) != "INVALID_REQUEST" {
		t.Errorf("PATCH with a bad international name: %d %v, want 400", code, out)
	}
}
