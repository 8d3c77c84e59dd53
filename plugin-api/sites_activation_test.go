package pluginapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSiteActivationsThroughTheAPI(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.accountWith("mega", 100)
	aliasID, aliasKey := a.alias(key, map[string]any{"name": "licensed", "max_sites": 2, "release_after": "30d"})
	if code, out := a.do("GET", "/v1/aliases/"+aliasID, key, nil); code != http.StatusOK || out["max_sites"] != 2.0 || out["release_after"] != "30d" {
		t.Fatalf("alias: %d %v", code, out)
	}
	validate := func(site string) (int, map[string]any) {
		t.Helper()
		return a.validate("key=" + aliasKey + "&site=" + url.QueryEscape(site))
	}
	if code, out := validate("https://one.example/"); code != http.StatusOK || at(out, "sites", "used") != 1.0 || at(out, "sites", "limit") != 2.0 {
		t.Fatalf("first site: %d %v", code, out)
	}
	if code, out := validate("http://localhost:8080"); code != http.StatusOK || at(out, "sites", "used") != 1.0 {
		t.Fatalf("a development host: %d %v", code, out)
	}
	if code, out := validate("https://two.example/"); code != http.StatusOK || at(out, "sites", "used") != 2.0 {
		t.Fatalf("second site: %d %v", code, out)
	}
	code, out := validate("https://three.example/")
	if code != http.StatusForbidden || out["code"] != codeSiteLimit || !strings.Contains(out["message"].(string), "2 of its 2") {
		t.Fatalf("third site: %d %v", code, out)
	}
	if code, out := a.validate("key=" + aliasKey); code != http.StatusForbidden || out["code"] != codeSiteNotAllowed {
		t.Fatalf("no site: %d %v", code, out)
	}
	// The owner sees which sites hold a slot and releases one.
	code, out = a.do("GET", "/v1/keys/"+aliasID+"/sites", key, nil)
	holding := 0
	for _, s := range out["sites"].([]any) {
		if s.(map[string]any)["holds_slot"] == true {
			holding++
		}
	}
	if code != http.StatusOK || holding != 2 {
		t.Fatalf("sites: %d %v, want two holding a slot", code, out)
	}
	if code, out := a.do("DELETE", "/v1/keys/"+aliasID+"/sites/One.Example", key, nil); code != http.StatusNoContent {
		t.Fatalf("release one.example: %d %v", code, out)
	}
	if code, out := a.do("DELETE", "/v1/keys/"+aliasID+"/sites/one.example", key, nil); code != http.StatusNotFound || errorCode(out) != codeNotFound {
		t.Fatalf("release it again: %d %v", code, out)
	}
	if code, out := validate("https://three.example/"); code != http.StatusOK || at(out, "sites", "used") != 2.0 {
		t.Fatalf("third site after a release: %d %v", code, out)
	}
	// A site that moved frees its own slot, the key in the header or the body.
	if code, out := a.do("POST", "/v1/sites/deactivate", aliasKey, map[string]any{"site": "https://two.example/"}); code != http.StatusOK ||
		out["released"] != true || at(out, "sites", "used") != 1.0 {
		t.Fatalf("deactivate two.example: %d %v", code, out)
	}
	if code, out := a.do("POST", "/v1/sites/deactivate", "", map[string]any{"key": aliasKey, "site": "https://two.example/"}); code != http.StatusOK || out["released"] != false {
		t.Fatalf("deactivate it again: %d %v", code, out)
	}
	for _, c := range []struct {
		body map[string]any
		code int
		err  string
	}{
		{map[string]any{"key": aliasKey}, 400, codeInvalidRequest},
		{map[string]any{"site": "https://x.example"}, 400, codeInvalidRequest},
		{map[string]any{"key": "short", "site": "https://x.example"}, 401, codeMalformed},
		{map[string]any{"key": strings.Repeat("A", 20), "site": "https://x.example"}, 401, codeNoKey},
		{map[string]any{"key": aliasKey, "site": "not a url"}, 400, codeInvalidRequest},
	} {
		if code, out := a.do("POST", "/v1/sites/deactivate", "", c.body); code != c.code || errorCode(out) != c.err {
			t.Errorf("deactivate %v: %d %v, want %d %s", c.body, code, out, c.code, c.err)
		}
	}
	// Bad limits are 400 naming the field; null removes them.
	for field, bad := range map[string]any{"max_sites": 0, "release_after": "10m"} {
		if code, out := a.do("PATCH", "/v1/aliases/"+aliasID, key, map[string]any{field: bad}); code != http.StatusBadRequest || at(out, "error", "fields", field) == nil {
			t.Errorf("%s %v: %d %v", field, bad, code, out)
		}
	}
	if code, out := a.do("PATCH", "/v1/aliases/"+aliasID, key, map[string]any{"max_sites": nil, "release_after": nil}); code != http.StatusOK ||
		out["max_sites"] != nil || out["release_after"] != nil {
		t.Fatalf("remove the limits: %d %v", code, out)
	}
	if code, out := validate("https://four.example/"); code != http.StatusOK || out["sites"] != nil {
		t.Fatalf("without max_sites: %d %v", code, out)
	}
}

func TestSiteActivationsExactUnderConcurrentHTTP(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.accountWith("mega", 100)
	_, aliasKey := a.alias(key, map[string]any{"name": "licensed", "max_sites": 3})
	srv := httptest.NewServer(a.handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		status = map[string]int{}
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"key": {aliasKey}, "site": {fmt.Sprintf("https://site%d.example", i)}}
			resp, err := client.PostForm(srv.URL+"/v1/validate", form)
			if err != nil {
				t.Error(err)
				return
			}
			var b strings.Builder
			buf := make([]byte, 512)
			for {
				n, err := resp.Body.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			resp.Body.Close()
			code := "VALID"
			if strings.Contains(b.String(), codeSiteLimit) {
				code = codeSiteLimit
			}
			mu.Lock()
			status[fmt.Sprint(resp.StatusCode, " ", code)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if status["200 VALID"] != 3 || status["403 "+codeSiteLimit] != 47 || len(status) != 2 {
		t.Fatalf("answers %v; want 3 × 200 and 47 × 403 SITE_LIMIT_REACHED", status)
	}
}

func TestThePrimaryKeyMayCountItsSites(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.accountWith("mega", 100)
	_, keys := a.do("GET", "/v1/keys", key, nil)
	primaryID := at(keys, "keys").([]any)[0].(map[string]any)["id"].(string)
	if code, out := a.do("PATCH", "/v1/keys/"+primaryID, key, map[string]any{"max_sites": 1}); code != http.StatusOK || out["max_sites"] != 1.0 {
		t.Fatalf("PATCH max_sites: %d %v", code, out)
	}
	if code, out := a.validate("key=" + key + "&site=https%3A%2F%2Fmain.example"); code != http.StatusOK || at(out, "sites", "used") != 1.0 {
		t.Fatalf("first site: %d %v", code, out)
	}
	if code, out := a.validate("key=" + key + "&site=https%3A%2F%2Fother.example"); code != http.StatusForbidden || out["code"] != codeSiteLimit {
		t.Fatalf("second site: %d %v", code, out)
	}
	// The owner's own API calls are not validations: they take no slot.
	if code, out := a.do("GET", "/v1/account", key, nil); code != http.StatusOK {
		t.Fatalf("account: %d %v", code, out)
	}
}
