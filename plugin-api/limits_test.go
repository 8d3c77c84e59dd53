package pluginapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// charge posts units to POST /v1/usage with key and the other fields given.
func (a *ownerAPI) charge(key string, body map[string]any) (int, map[string]any) {
	a.t.Helper()
	return a.do("POST", "/v1/usage", key, body)
}

func TestSpendLimitThroughTheAPI(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.accountWith("mega", 1000)
	aliasID, aliasKey := a.alias(key, map[string]any{"name": "client", "spend_limit": map[string]any{"limit": 5, "period": "day"}})

	code, out := a.charge(aliasKey, map[string]any{"units": 3, "idempotency_key": "first"})
	if code != http.StatusOK || at(out, "spend_limit", "remaining") != 2.0 || at(out, "spend_limit", "resets_at") != "2026-05-02T00:00:00Z" {
		t.Fatalf("charge 3 of 5: %d %v", code, out)
	}
	// Over the key's limit: 402, what was spent and when it resets; the pool is untouched.
	code, out = a.charge(aliasKey, map[string]any{"units": 3})
	if code != http.StatusPaymentRequired || errorCode(out) != codeKeySpendLimit ||
		at(out, "error", "spend_limit", "spent") != 3.0 || at(out, "error", "spend_limit", "limit") != 5.0 ||
		at(out, "error", "spend_limit", "resets_at") != "2026-05-02T00:00:00Z" {
		t.Fatalf("charge over the limit: %d %v", code, out)
	}
	// A replay keeps its first answer.
	code, out = a.charge(aliasKey, map[string]any{"units": 3, "idempotency_key": "first"})
	if code != http.StatusOK || out["credits"] != 997.0 || at(out, "spend_limit", "spent") != 3.0 {
		t.Fatalf("replay: %d %v", code, out)
	}
	// Validate and the key list show the allowance.
	if code, out := a.validate("key=" + aliasKey); code != http.StatusOK || at(out, "spend_limit", "remaining") != 2.0 {
		t.Fatalf("validate: %d %v", code, out)
	}
	code, out = a.do("GET", "/v1/aliases/"+aliasID, key, nil)
	if code != http.StatusOK || at(out, "spend_limit", "spent") != 3.0 || at(out, "spend_limit", "period") != "day" {
		t.Fatalf("alias: %d %v", code, out)
	}
	// PATCH sets and removes the limit, for an alias and for the primary key.
	if code, out := a.do("PATCH", "/v1/aliases/"+aliasID, key, map[string]any{"spend_limit": nil}); code != http.StatusOK || out["spend_limit"] != nil {
		t.Fatalf("remove the alias's limit: %d %v", code, out)
	}
	if code, out := a.charge(aliasKey, map[string]any{"units": 50}); code != http.StatusOK || out["spend_limit"] != nil {
		t.Fatalf("charge without a limit: %d %v", code, out)
	}
	_, keys := a.do("GET", "/v1/keys", key, nil)
	primaryID := at(keys, "keys").([]any)[0].(map[string]any)["id"].(string)
	code, out = a.do("PATCH", "/v1/keys/"+primaryID, key, map[string]any{"spend_limit": map[string]any{"limit": 1, "period": "total"}})
	if code != http.StatusOK || at(out, "spend_limit", "limit") != 1.0 || at(out, "spend_limit", "resets_at") != nil {
		t.Fatalf("primary limit: %d %v", code, out)
	}
	if code, out := a.charge(key, map[string]any{"units": 2}); code != http.StatusPaymentRequired || errorCode(out) != codeKeySpendLimit {
		t.Fatalf("primary over its limit: %d %v", code, out)
	}
	// Bad limits are 400 naming the field.
	for _, bad := range []any{map[string]any{"limit": 0, "period": "day"}, map[string]any{"limit": 5, "period": "week"},
		map[string]any{"limit": 5, "period": "day", "extra": 1}, "5/day"} {
		code, out := a.do("PATCH", "/v1/aliases/"+aliasID, key, map[string]any{"spend_limit": bad})
		if code != http.StatusBadRequest || at(out, "error", "fields", "spend_limit") == nil && at(out, "error", "fields", "extra") == nil {
			t.Errorf("spend_limit %v: %d %v, want 400 naming the field", bad, code, out)
		}
	}
}

func TestSpendLimitExactUnderConcurrentHTTP(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.accountWith("mega", 1000)
	_, aliasKey := a.alias(key, map[string]any{"name": "client", "spend_limit": map[string]any{"limit": 500, "period": "month"}})
	srv := httptest.NewServer(a.handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: time.Minute}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		status = map[int]int{}
	)
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/v1/usage", bytes.NewReader([]byte(`{"units":1}`)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", aliasKey)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			status[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if status[200] != 500 || status[402] != 1500 || len(status) != 2 {
		t.Fatalf("statuses %v; want 500 × 200 and 1500 × 402", status)
	}
	if code, out := a.do("GET", "/v1/account", key, nil); code != http.StatusOK || out["credits"] != 500.0 {
		t.Fatalf("account: %d %v, want 500 credits left", code, out)
	}
}

func TestUsageFollowsTheKeysBindings(t *testing.T) {
	a := newOwnerAPI(t, "optimize", "stats")
	_, key := a.accountWith("mega", 100)
	_, bound := a.alias(key, map[string]any{"name": "bound", "allowed_sites": []string{"client.example"}})
	_, scoped := a.alias(key, map[string]any{"name": "scoped", "scopes": []string{"optimize"}})
	for _, c := range []struct {
		key  string
		body map[string]any
		code int
		err  string
	}{
		{bound, map[string]any{"units": 1}, 403, codeSiteNotAllowed},
		{bound, map[string]any{"units": 1, "site": "https://copied.example"}, 403, codeSiteNotAllowed},
		{bound, map[string]any{"units": 1, "site": "https://client.example/shop"}, 200, ""},
		{scoped, map[string]any{"units": 1}, 403, codeScopeDenied},
		{scoped, map[string]any{"units": 1, "scope": "stats"}, 403, codeScopeDenied},
		{scoped, map[string]any{"units": 1, "scope": "optimize"}, 200, ""},
		{key, map[string]any{"units": 1}, 200, ""}, // the primary key is bound to nothing
		{key, map[string]any{"units": 1, "site": string(make([]byte, 3000))}, 400, codeInvalidRequest},
	} {
		code, out := a.charge(c.key, c.body)
		if code != c.code || c.err != "" && errorCode(out) != c.err {
			t.Errorf("%v: %d %v, want %d %s", c.body, code, out, c.code, c.err)
		}
	}
	if _, out := a.do("GET", "/v1/account", key, nil); out["credits"] != 97.0 {
		t.Errorf("pool %v, want 97: refused charges charge nothing", out["credits"])
	}
}

// at is the value at path in a decoded JSON object, nil when absent.
func at(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}
