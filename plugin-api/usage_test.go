package pluginapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"keyd/store"
)

func (a *ownerAPI) accountWith(plan string, credits int64) (id, key string) {
	a.t.Helper()
	c, err := a.db.CreateAccount(context.Background(), store.SystemActor, store.NewAccount{Name: "Pool", Email: "p@acme.test", Plan: plan, Credits: credits})
	if err != nil {
		a.t.Fatal(err)
	}
	return c.Account.ID, c.Secret
}

func TestConcurrentSpendingNeverOverdraws(t *testing.T) {
	a := newOwnerAPI(t)
	id, key := a.accountWith("enterprise", 1000) // unlimited rate: only the pool decides
	aliasKey := ""
	if _, err := a.db.UpdateAccount(context.Background(), store.SystemActor, id, store.AccountPatch{SetAliasLimit: true, AliasLimitOverride: ptr(1)}); err != nil {
		t.Fatal(err)
	}
	_, aliasKey = a.alias(key, map[string]any{"name": "client"})

	srv := httptest.NewServer(a.handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: time.Minute}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		status = map[int]int{}
	)
	for i := 0; i < 2000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k := key
			if i%2 == 0 {
				k = aliasKey // an alias spends the same pool
			}
			req, _ := http.NewRequest("POST", srv.URL+"/v1/usage", bytes.NewReader([]byte(`{"units":1}`)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", k)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			status[resp.StatusCode]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if status[200] != 1000 || status[402] != 1000 || len(status) != 2 {
		t.Fatalf("statuses %v; want 1000 × 200 and 1000 × 402", status)
	}
	acc, err := a.db.GetAccount(context.Background(), id)
	if err != nil || acc.Credits != 0 {
		t.Fatalf("pool ends at %d (%v), want 0", acc.Credits, err)
	}
	info, _ := a.db.GetCreditInfo(context.Background(), id)
	if info.Spent != 1000 {
		t.Fatalf("credits_spent %d, want 1000", info.Spent)
	}
	// Validate shows the pool.
	if _, out := a.validate("key=" + key); out["account"].(map[string]any)["credits"] != 0.0 {
		t.Fatalf("validate shows credits %v, want 0", out["account"])
	}
	// Units are counted per key per day.
	_, out := a.do("GET", "/v1/usage", key, nil)
	var units float64
	for _, row := range out["usage"].([]any) {
		units += row.(map[string]any)["units"].(float64)
	}
	if units != 1000 {
		t.Fatalf("units counted %v, want 1000", units)
	}
}

func ptr[T any](v T) *T { return &v }

func (a *ownerAPI) spend(key string, body string) (int, map[string]any, http.Header) {
	a.t.Helper()
	r := httptest.NewRequest("POST", "/v1/usage", bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-API-Key", key)
	w := httptest.NewRecorder()
	a.handler.ServeHTTP(w, r)
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code >= 500 {
		a.t.Fatalf("usage %s: %d %v", body, w.Code, out)
	}
	return w.Code, out, w.Header()
}

func TestUsageIdempotencyAndInput(t *testing.T) {
	a := newOwnerAPI(t, "optimize", "stats")
	_, key := a.accountWith("pro", 100)
	code, first, _ := a.spend(key, `{"units":3,"scope":"optimize","idempotency_key":"order-1"}`)
	if code != 200 || first["credits"] != 97.0 || first["charged"] != 3.0 {
		t.Fatalf("first charge: %d %v", code, first)
	}
	a.spend(key, `{"units":5}`) // another charge in between
	code, again, h := a.spend(key, `{"units":3,"scope":"optimize","idempotency_key":"order-1"}`)
	if code != 200 || again["credits"] != 97.0 || again["charged"] != 3.0 || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v %v; want the first answer", code, again, h)
	}
	code, out, _ := a.spend(key, `{"units":4,"idempotency_key":"order-1"}`)
	if code != 409 || errorCode(out) != "IDEMPOTENCY_MISMATCH" {
		t.Fatalf("same key, other units: %d %v", code, out)
	}
	acc, _ := a.db.GetAccount(context.Background(), a.accountOf(key))
	if acc.Credits != 92 {
		t.Fatalf("pool %d after 3 + 5 charged once each, want 92", acc.Credits)
	}
	// After 24 hours the key may be used again and charges again.
	a.now = a.now.Add(store.IdempotencyWindow + time.Second)
	if code, out, _ := a.spend(key, `{"units":3,"idempotency_key":"order-1"}`); code != 200 || out["credits"] != 89.0 {
		t.Fatalf("after the replay window: %d %v", code, out)
	}

	for _, c := range []struct {
		body, code string
		status     int
	}{
		{`{"units":0}`, "INVALID_REQUEST", 400},
		{`{"units":1000001}`, "INVALID_REQUEST", 400},
		{`{"units":-1}`, "INVALID_REQUEST", 400},
		{`{"units":1e3}`, "INVALID_REQUEST", 400},
		{`{"units":99999999999999999999}`, "INVALID_REQUEST", 400},
		{`{"units":"5"}`, "INVALID_REQUEST", 400},
		{`{"units":1,"idempotency_key":"` + string(bytes.Repeat([]byte("k"), 129)) + `"}`, "INVALID_REQUEST", 400},
		{`{"units":1,"scope":"resize"}`, "INVALID_REQUEST", 400},
		{`{"units":1,"units":2}`, "INVALID_REQUEST", 400},
		{`{"units":1000}`, "INSUFFICIENT_CREDITS", 402},
	} {
		if code, out, _ := a.spend(key, c.body); code != c.status || errorCode(out) != c.code {
			t.Errorf("usage %s: %d %v, want %d %s", c.body, code, out, c.status, c.code)
		}
	}
	for _, c := range []struct{ key, code string }{
		{"short", "MALFORMED"}, {"AAAAAAAAAAAAAAAAAAAA", "NOT_FOUND"},
	} {
		if code, out, _ := a.spend(c.key, `{"units":1}`); code != 401 || errorCode(out) != c.code {
			t.Errorf("usage with key %q: %d %v, want 401 %s", c.key, code, out, c.code)
		}
	}
	acc, _ = a.db.GetAccount(context.Background(), a.accountOf(key))
	if acc.Credits != 89 {
		t.Fatalf("refused requests changed the pool: %d, want 89", acc.Credits)
	}
}

func (a *ownerAPI) accountOf(key string) string {
	v, ok := a.db.LookupKey(store.HashKey(key))
	if !ok {
		a.t.Fatal("unknown key")
	}
	return v.AccountID
}

func TestRateLimitIsSharedByAnAccountsKeys(t *testing.T) {
	a := newOwnerAPI(t)
	limit := 3
	if _, err := a.db.PutPlan(context.Background(), store.SystemActor, store.Plan{Name: "tiny", AliasLimit: ptr(5), RateLimitPerMinute: &limit}); err != nil {
		t.Fatal(err)
	}
	id, key := a.accountWith("tiny", 100)
	_, aliasKey := a.alias(key, map[string]any{"name": "client"})
	_, otherKey := a.accountWith("tiny", 100)

	send := func(k string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/validate", bytes.NewReader([]byte("key="+k)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		a.handler.ServeHTTP(w, r)
		return w
	}
	for i, k := range []string{key, aliasKey, key} {
		w := send(k)
		if w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
		if got := w.Header().Get("X-RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Fatalf("request %d: remaining %q, want %d", i, got, 2-i)
		}
		if w.Header().Get("X-RateLimit-Limit") != "3" || w.Header().Get("X-RateLimit-Reset") == "" {
			t.Fatalf("request %d: headers %v", i, w.Header())
		}
	}
	// The fourth, by either key (and for usage too), is refused.
	for _, w := range []*httptest.ResponseRecorder{send(aliasKey), send(key)} {
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		if w.Code != 429 || out["code"] != "RATE_LIMITED" || w.Header().Get("Retry-After") != "20" {
			t.Fatalf("over the limit: %d %v Retry-After %q, want 429 RATE_LIMITED and 20 s", w.Code, out, w.Header().Get("Retry-After"))
		}
	}
	if code, out, _ := a.spend(key, `{"units":1}`); code != 429 || errorCode(out) != "RATE_LIMITED" {
		t.Fatalf("usage over the limit: %d %v", code, out)
	}
	// Another account is not affected.
	if w := send(otherKey); w.Code != 200 {
		t.Fatalf("another account: %d", w.Code)
	}
	// A token comes back every 20 s.
	a.now = a.now.Add(20 * time.Second)
	if w := send(aliasKey); w.Code != 200 {
		t.Fatalf("after 20 s: %d", w.Code)
	}
	if w := send(key); w.Code != 429 {
		t.Fatalf("second request after 20 s: %d, want 429", w.Code)
	}
	// Unlimited plans answer without rate-limit headers.
	if _, err := a.db.UpdateAccount(context.Background(), store.SystemActor, id, store.AccountPatch{Plan: ptr("enterprise")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if w := send(key); w.Code != 200 || w.Header().Get("X-RateLimit-Limit") != "" {
			t.Fatalf("unlimited plan: %d %v", w.Code, w.Header())
		}
	}
}

func TestSubaccounts(t *testing.T) {
	a := newOwnerAPI(t)
	parentID, key := a.accountWith("pro", 1000)
	code, out := a.do("POST", "/v1/subaccounts", key, map[string]any{"name": "Client Co", "email": "c@client.test", "credits": 300})
	if code != 201 {
		t.Fatalf("create subaccount: %d %v", code, out)
	}
	sub := out["account"].(map[string]any)
	subID, subKey := sub["id"].(string), out["key"].(string)
	if sub["parent_id"] != parentID || sub["credits"] != 300.0 || sub["plan"].(map[string]any)["name"] != "pro" {
		t.Fatalf("subaccount body: %v", sub)
	}
	if code, out := a.do("POST", "/v1/subaccounts", key, map[string]any{"name": "Too big", "email": "b@client.test", "credits": 701}); code != 402 || errorCode(out) != "INSUFFICIENT_CREDITS" {
		t.Fatalf("subaccount over the pool: %d %v", code, out)
	}
	if code, out := a.do("POST", "/v1/subaccounts", subKey, map[string]any{"name": "Nested", "email": "n@client.test"}); code != 403 || errorCode(out) != "SUBACCOUNT_NESTING" {
		t.Fatalf("nested subaccount: %d %v", code, out)
	}
	// The subaccount has its own key, aliases and pool.
	_, subAlias := a.alias(subKey, map[string]any{"name": "client site"})
	if code, out, _ := a.spend(subAlias, `{"units":50}`); code != 200 || out["credits"] != 250.0 {
		t.Fatalf("subaccount alias spends: %d %v", code, out)
	}
	// Allocate more, reclaim at most what is left.
	if code, out := a.do("POST", "/v1/subaccounts/"+subID+"/credits", key, map[string]any{"amount": 100}); code != 200 || out["credits"] != 600.0 {
		t.Fatalf("allocate: %d %v", code, out)
	}
	if code, out := a.do("POST", "/v1/subaccounts/"+subID+"/credits", key, map[string]any{"amount": -351}); code != 402 {
		t.Fatalf("reclaim more than left: %d %v", code, out)
	}
	if code, out := a.do("POST", "/v1/subaccounts/"+subID+"/credits", key, map[string]any{"amount": -350}); code != 200 || out["credits"] != 950.0 {
		t.Fatalf("reclaim all: %d %v", code, out)
	}
	_, list := a.do("GET", "/v1/subaccounts", key, nil)
	subs := list["subaccounts"].([]any)
	if len(subs) != 1 || subs[0].(map[string]any)["credits"] != 0.0 || subs[0].(map[string]any)["credits_spent"] != 50.0 {
		t.Fatalf("subaccounts list: %v", list)
	}
	// Another account cannot touch it.
	_, otherKey := a.accountWith("pro", 10)
	if code, _ := a.do("POST", "/v1/subaccounts/"+subID+"/credits", otherKey, map[string]any{"amount": 1}); code != 404 {
		t.Fatalf("another account allocating: %d, want 404", code)
	}
	// Suspending the parent suspends the subaccount's keys at once.
	if _, err := a.db.UpdateAccount(context.Background(), store.SystemActor, parentID, store.AccountPatch{Status: ptr("suspended")}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{subKey, subAlias} {
		if code, out := a.validate("key=" + k); code != 401 || out["code"] != "ACCOUNT_SUSPENDED" {
			t.Fatalf("subaccount key with the parent suspended: %d %v", code, out)
		}
	}
	// The audit log shows the movements on both sides.
	_, audit := a.do("GET", "/v1/audit?limit=100", key, nil)
	allocations := 0
	for _, e := range audit["events"].([]any) {
		if e.(map[string]any)["action"] == "credits.allocated" {
			allocations++
		}
	}
	if allocations != 3 {
		t.Fatalf("credits.allocated in the parent's audit log: %d, want 3", allocations)
	}
}

func TestLowCreditWarningOnceAndRearmedByTopUp(t *testing.T) {
	a := newOwnerAPI(t)
	id, key := a.accountWith("pro", 100) // default threshold: 10 credits
	count := func() int {
		_, audit := a.do("GET", "/v1/audit?limit=500", key, nil)
		n := 0
		for _, e := range audit["events"].([]any) {
			if e.(map[string]any)["action"] == "credits.low" {
				n++
			}
		}
		return n
	}
	a.spend(key, `{"units":90}`) // 10 left: not below
	if n := count(); n != 0 {
		t.Fatalf("credits.low at the threshold: %d", n)
	}
	a.spend(key, `{"units":1}`)
	a.spend(key, `{"units":1}`)
	if n := count(); n != 1 {
		t.Fatalf("credits.low after crossing: %d, want 1", n)
	}
	if _, err := a.db.AddCredits(context.Background(), store.SystemActor, id, 50, "purchase"); err != nil {
		t.Fatal(err)
	}
	a.spend(key, `{"units":50}`) // 58 -> 8, below 5 (10% of 50)? no: 8 >= 5
	if n := count(); n != 1 {
		t.Fatalf("credits.low above the new threshold: %d, want 1", n)
	}
	a.spend(key, `{"units":4}`) // 4 < 5
	if n := count(); n != 2 {
		t.Fatalf("credits.low after the top-up re-armed it: %d, want 2", n)
	}
	// The owner can set a threshold of their own.
	if code, out := a.do("PATCH", "/v1/account", key, map[string]any{"low_credit_threshold": 1000}); code != 200 || out["low_credit_threshold"] != 1000.0 {
		t.Fatalf("set threshold: %d %v", code, out)
	}
	if code, _ := a.do("PATCH", "/v1/account", key, map[string]any{"low_credit_threshold": -1}); code != 400 {
		t.Fatalf("negative threshold: %d", code)
	}
}

func TestUnusableKeysDoNotSpendTheRateLimit(t *testing.T) {
	a := newOwnerAPI(t)
	limit := 2
	if _, err := a.db.PutPlan(context.Background(), store.SystemActor, store.Plan{Name: "tiny", AliasLimit: ptr(1), RateLimitPerMinute: &limit}); err != nil {
		t.Fatal(err)
	}
	_, old := a.accountWith("tiny", 10)
	_, out := a.do("POST", "/v1/account/reset-key", old, map[string]any{})
	key := out["key"].(string)
	// Someone still holding the reset key hammers keyd...
	for i := 0; i < 20; i++ {
		if code, out := a.validate("key=" + old); code != 401 || out["code"] != "REVOKED" {
			t.Fatalf("old key, try %d: %d %v", i, code, out)
		}
		if code, out, _ := a.spend(old, `{"units":1}`); code != 401 || errorCode(out) != "REVOKED" {
			t.Fatalf("old key spending, try %d: %d %v", i, code, out)
		}
	}
	// ...and the account's good key still has its whole limit.
	for i := 0; i < 2; i++ {
		if code, out := a.validate("key=" + key); code != 200 {
			t.Fatalf("new key, request %d: %d %v", i, code, out)
		}
	}
	if code, out := a.validate("key=" + key); code != 429 || out["code"] != "RATE_LIMITED" {
		t.Fatalf("third request with a limit of 2: %d %v", code, out)
	}
}
