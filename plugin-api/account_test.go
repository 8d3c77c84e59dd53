package pluginapi_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"keyd/store"
)

func TestGetAccount(t *testing.T) {
	e := newEnv(t, testToken)
	id, key := e.createAccount("Acme", "pro", 1200)
	alias := store.NewKey()
	aliasExp := t0.Add(time.Hour)
	insertKeyRow(t, e.dsn, id, "alias", "Client", "active", alias, &aliasExp, `["*"]`)
	insertKeyRow(t, e.dsn, id, "alias", "Paused", "inactive", store.NewKey(), nil, `["*"]`)
	e.reopen()

	for _, auth := range [][]string{{"X-API-Key", key}, {"Authorization", "Bearer " + key}, {"Authorization", "bearer " + key}} {
		res := e.do("GET", "/v1/account", "", "", auth...)
		if res.status != 200 {
			t.Fatalf("GET /v1/account with %s: %d %s", auth[0], res.status, res.raw)
		}
		checkFields(t, "account", res.body, "id", "name", "email", "status", "plan", "credits", "credits_spent", "low_credit_threshold", "aliases", "subaccounts", "parent_id", "created_at")
		checkFields(t, "plan", res.body["plan"], "name", "alias_limit", "subaccount_limit", "rate_limit_per_minute")
		checkFields(t, "aliases", res.body["aliases"], "used", "limit")
		checkFields(t, "subaccounts", res.body["subaccounts"], "used", "limit")
		b := res.body
		if str(b, "id") != id || str(b, "name") != "Acme" || str(b, "email") != "acme@example.com" || str(b, "status") != "active" ||
			b["credits"] != float64(1200) || b["parent_id"] != nil || str(b, "created_at") != t0.Format(time.RFC3339) {
			t.Errorf("account = %s", res.raw)
		}
		if str(b, "plan", "name") != "pro" || dig(b, "plan", "alias_limit") != float64(5) || dig(b, "plan", "rate_limit_per_minute") != float64(600) ||
			dig(b, "plan", "subaccount_limit") != float64(5) {
			t.Errorf("plan = %v", b["plan"])
		}
		// Only the active alias holds a slot.
		if dig(b, "aliases", "used") != float64(1) || dig(b, "aliases", "limit") != float64(5) {
			t.Errorf("aliases = %v, want used 1 of 5", b["aliases"])
		}
		if dig(b, "subaccounts", "used") != float64(0) || dig(b, "subaccounts", "limit") != float64(5) {
			t.Errorf("subaccounts = %v, want used 0 of 5", b["subaccounts"])
		}
	}
	// Once the alias has expired by the clock it frees its slot.
	e.clock.Add(2 * time.Hour)
	if res := e.do("GET", "/v1/account", "", "", "X-API-Key", key); dig(res.body, "aliases", "used") != float64(0) {
		t.Errorf("aliases after the alias expired = %v, want used 0", res.body["aliases"])
	}
	e.clock.Add(-2 * time.Hour)

	checkError(t, e.do("GET", "/v1/account", "", ""), http.StatusUnauthorized, "UNAUTHORIZED")
	checkError(t, e.do("GET", "/v1/account", "", "", "X-API-Key", "short"), http.StatusUnauthorized, "UNAUTHORIZED")
	checkError(t, e.do("GET", "/v1/account", "", "", "Authorization", "Basic "+key), http.StatusUnauthorized, "UNAUTHORIZED")
	checkError(t, e.do("GET", "/v1/account", "", "", "X-API-Key", store.NewKey()), http.StatusUnauthorized, "UNAUTHORIZED")
	checkError(t, e.do("GET", "/v1/account", "", "", "X-API-Key", alias), http.StatusForbidden, "PRIMARY_KEY_REQUIRED")
	checkError(t, e.do("POST", "/v1/account/reset-key", "", "", "X-API-Key", alias), http.StatusForbidden, "PRIMARY_KEY_REQUIRED")
	// The admin token is not an account key.
	checkError(t, e.do("GET", "/v1/account", "", "", "Authorization", "Bearer "+testToken), http.StatusUnauthorized, "UNAUTHORIZED")

	// A suspended account can be read but not changed.
	if res := e.admin("PATCH", "/admin/v1/accounts/"+id, `{"status":"suspended"}`); res.status != 200 {
		t.Fatalf("suspend: %d %s", res.status, res.raw)
	}
	if res := e.do("GET", "/v1/account", "", "", "X-API-Key", key); res.status != 200 || str(res.body, "status") != "suspended" {
		t.Errorf("suspended account read: %d %s", res.status, res.raw)
	}
	checkError(t, e.doJSON("POST", "/v1/account/reset-key", `{}`, "X-API-Key", key), http.StatusForbidden, "ACCOUNT_SUSPENDED")
}

func TestResetKey(t *testing.T) {
	e := newEnv(t, testToken)
	id, key := e.createAccount("Acme", "pro", 10)

	// reset posts a reset with the current key and returns the new one.
	reset := func(body string) (string, response) {
		t.Helper()
		res := e.doJSON("POST", "/v1/account/reset-key", body, "X-API-Key", key)
		if res.status != 200 {
			t.Fatalf("reset-key %s: %d %s", body, res.status, res.raw)
		}
		checkFields(t, "reset answer", res.body, "key", "key_id", "hint", "previous")
		checkFields(t, "previous", res.body["previous"], "id", "hint", "valid_until")
		nk := str(res.body, "key")
		if !store.WellFormedKey(nk) || nk == key || str(res.body, "hint") != store.KeyHint(nk) || str(res.body, "previous", "hint") != store.KeyHint(key) {
			t.Errorf("reset answer = %s", res.raw)
		}
		return nk, res
	}

	// No body and grace 0: the old key dies now.
	old := key
	var res response
	key, res = reset("")
	if got := str(res.body, "previous", "valid_until"); got != t0.Format(time.RFC3339) {
		t.Errorf("valid_until without grace = %s, want now %s", got, t0.Format(time.RFC3339))
	}
	checkFailure(t, e.validateJSON(old), 401, "REVOKED")
	if r := e.validateJSON(key); r.status != 200 || str(r.body, "key", "id") != str(res.body, "key_id") {
		t.Errorf("new key: %d %s", r.status, r.raw)
	}
	checkError(t, e.do("GET", "/v1/account", "", "", "X-API-Key", old), http.StatusUnauthorized, "UNAUTHORIZED")

	for _, tt := range []struct {
		body  string
		grace time.Duration
	}{
		{`{"grace_period":"0"}`, 0},
		{`{"grace_period":"0s"}`, 0},
		{`{}`, 0},
		{`{"grace_period":"24h"}`, 24 * time.Hour},
		{`{"grace_period":"168h"}`, 168 * time.Hour},
		{`{"grace_period":"7d"}`, 168 * time.Hour},
		{`{"grace_period":"90m"}`, 90 * time.Minute},
		{`{"grace_period":"1.5h"}`, 90 * time.Minute},
		{`{"grace_period":"1.5d"}`, 36 * time.Hour},
	} {
		old := key
		key, res = reset(tt.body)
		validUntil := e.clock.Now().Add(tt.grace)
		if got := str(res.body, "previous", "valid_until"); got != validUntil.Format(time.RFC3339) {
			t.Errorf("%s: valid_until = %s, want %s", tt.body, got, validUntil.Format(time.RFC3339))
		}
		if tt.grace == 0 {
			checkFailure(t, e.validateJSON(old), 401, "REVOKED")
			continue
		}
		// During the grace both keys validate, but only the new one manages.
		if r := e.validateJSON(old); r.status != 200 {
			t.Errorf("%s: old key during grace: %d %s", tt.body, r.status, r.raw)
		}
		checkError(t, e.do("GET", "/v1/account", "", "", "X-API-Key", old), http.StatusUnauthorized, "UNAUTHORIZED")
		e.clock.Add(tt.grace - time.Second)
		if r := e.validateJSON(old); r.status != 200 {
			t.Errorf("%s: old key a second before the end of grace: %d %s", tt.body, r.status, r.raw)
		}
		e.clock.Add(time.Second)
		checkFailure(t, e.validateJSON(old), 401, "REVOKED")
		if r := e.validateJSON(key); r.status != 200 {
			t.Errorf("%s: new key: %d %s", tt.body, r.status, r.raw)
		}
	}

	for _, body := range []string{
		`{"grace_period":"169h"}`,
		`{"grace_period":"8d"}`,
		`{"grace_period":"-1h"}`,
		`{"grace_period":"garbage"}`,
		`{"grace_period":"24"}`,
		`{"grace_period":"d"}`,
		`{"grace_period":"99999999999999999999h"}`,
		`{"grace_period":604801}`,
		`{"grace_period":3600}`, // a bare number: seconds? minutes? refused like in ttl
		`{"grace_period":0}`,
		`{"grace_period":"9223372036854775807ns"}`,
		`{"grace_period":-5}`,
		`{"grace_period":1.5}`,
		`{"grace_period":null,"extra":1}`,
		`{"grace":"24h"}`,
		`{"grace_period":"` + string(make([]byte, 40)) + `"}`,
		`[]`,
		`{`,
	} {
		res := e.doJSON("POST", "/v1/account/reset-key", body, "X-API-Key", key)
		checkError(t, res, http.StatusBadRequest, "INVALID_REQUEST")
	}
	res = e.doJSON("POST", "/v1/account/reset-key", `{"grace_period":"169h"}`, "X-API-Key", key)
	if dig(res.body, "error", "fields", "grace_period") == nil {
		t.Errorf("169h: the error does not name grace_period: %s", res.raw)
	}
	checkError(t, e.do("POST", "/v1/account/reset-key", "text/plain", `{"grace_period":"1h"}`, "X-API-Key", key), http.StatusUnsupportedMediaType, "INVALID_REQUEST")
	// The refused requests left the current key in place.
	if r := e.validateHeader(key); r.status != 200 {
		t.Errorf("current key after refused resets: %d %s", r.status, r.raw)
	}
	if r := e.admin("GET", "/admin/v1/accounts/"+id, ""); r.status != 200 {
		t.Errorf("account after resets: %d %s", r.status, r.raw)
	}

	// Every reset is in the event log as key.reset.
	evs := countEvents(t, e, "key.reset")
	if evs != 10 {
		t.Errorf("%d key.reset events, want 10", evs)
	}
}

func countEvents(t *testing.T, e *testEnv, typ string) int {
	t.Helper()
	n := 0
	// The store has no event API yet: read the table through a second connection.
	conn := openSQL(t, e.dsn)
	if err := conn.QueryRowContext(context.Background(), `SELECT count(*) FROM events WHERE type = ?`, typ).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPlanHasOneShape: every owner and operator answer that carries an
// account's plan gives it as GET /v1/account does, an object with its
// limits; validate alone gives the name, as the contract fixes.
func TestPlanHasOneShape(t *testing.T) {
	e := newEnv(t, testToken)
	res := e.admin("POST", "/admin/v1/accounts", `{"name":"Acme","email":"ops@acme.test","plan":"pro","credits":1000}`)
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.raw)
	}
	id, key := str(res.body, "account", "id"), str(res.body, "key")
	plans := map[string]any{"POST /admin/v1/accounts": dig(res.body, "account", "plan")}
	owner := func(method, path, body string) response {
		t.Helper()
		res := e.doJSON(method, path, body, "X-API-Key", key)
		if res.status >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, res.status, res.raw)
		}
		return res
	}
	res = owner("POST", "/v1/subaccounts", `{"name":"Client Co","email":"it@client.test","credits":100}`)
	sub := str(res.body, "account", "id")
	plans["POST /v1/subaccounts"] = dig(res.body, "account", "plan")
	plans["GET /v1/account"] = dig(owner("GET", "/v1/account", "").body, "plan")
	list, _ := owner("GET", "/v1/subaccounts", "").body["subaccounts"].([]any)
	if len(list) != 1 {
		t.Fatalf("GET /v1/subaccounts: %v", list)
	}
	plans["GET /v1/subaccounts"] = dig(list[0].(map[string]any), "plan")
	plans["POST /v1/subaccounts/{id}/credits"] = dig(owner("POST", "/v1/subaccounts/"+sub+"/credits", `{"amount":5}`).body, "subaccount", "plan")
	plans["GET /admin/v1/accounts/{id}"] = dig(e.admin("GET", "/admin/v1/accounts/"+id, "").body, "plan")
	plans["PATCH /admin/v1/accounts/{id}"] = dig(e.admin("PATCH", "/admin/v1/accounts/"+id, `{}`).body, "plan")

	want := map[string]any{"name": "pro", "alias_limit": float64(5), "rate_limit_per_minute": float64(600), "subaccount_limit": float64(5)}
	for answer, plan := range plans {
		if !reflect.DeepEqual(plan, want) {
			t.Errorf("%s: plan = %#v, want %v", answer, plan, want)
		}
	}
	if res := e.validateJSON(key); str(res.body, "account", "plan") != "pro" {
		t.Errorf("validate: account.plan = %#v, want the name \"pro\"", dig(res.body, "account", "plan"))
	}
}
