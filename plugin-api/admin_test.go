package pluginapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"keyd/store"
)

var adminRoutes = []struct{ method, path, body string }{
	{"POST", "/admin/v1/accounts", `{"name":"a","email":"a@example.com","plan":"free"}`},
	{"GET", "/admin/v1/accounts/acc_0000000000000000", ``},
	{"PATCH", "/admin/v1/accounts/acc_0000000000000000", `{"status":"suspended"}`},
	{"POST", "/admin/v1/accounts/acc_0000000000000000/credits", `{"amount":5}`},
	{"GET", "/admin/v1/accounts", ``},
	{"POST", "/admin/v1/accounts/acc_0000000000000000/reset-key", `{}`},
	{"GET", "/admin/v1/plans", ``},
	{"PUT", "/admin/v1/plans/gold", `{"alias_limit":1,"rate_limit_per_minute":1}`},
}

func TestAdminOffWithoutToken(t *testing.T) {
	e := newEnv(t, "")
	for _, r := range adminRoutes {
		for _, auth := range []string{"", "Bearer ", "Bearer " + testToken} {
			res := e.do(r.method, r.path, "application/json", r.body, "Authorization", auth)
			checkError(t, res, http.StatusNotFound, "NOT_FOUND")
		}
	}
	if plans, _ := e.db.ListPlans(t.Context()); len(plans) != 4 {
		t.Errorf("the disabled admin API changed plans: %d", len(plans))
	}
}

func TestAdminAuth(t *testing.T) {
	e := newEnv(t, testToken)
	for _, r := range adminRoutes {
		for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong-token-wrong-token-wrong-token", "Bearer " + testToken + "x",
			"Basic " + testToken, testToken, "Bearer" + testToken} {
			res := e.do(r.method, r.path, "application/json", r.body, "Authorization", auth)
			checkError(t, res, http.StatusUnauthorized, "UNAUTHORIZED")
		}
	}
	if n := countEvents(t, e, "account.created") + countEvents(t, e, "plan.updated"); n != 0 {
		t.Errorf("refused admin calls made %d changes", n)
	}
	// The scheme name is case-insensitive (RFC 9110), as for owner keys.
	if res := e.do("GET", "/admin/v1/plans", "", "", "Authorization", "bearer "+testToken); res.status != 200 {
		t.Errorf("lower-case bearer: %d %s", res.status, res.raw)
	}
}

func TestAdminAccounts(t *testing.T) {
	e := newEnv(t, testToken)

	res := e.admin("POST", "/admin/v1/accounts", `{"name":"Acme Inc","email":"ops@acme.test","plan":"pro","credits":1200}`)
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.raw)
	}
	checkFields(t, "created", res.body, "account", "key")
	accountFields := []string{"id", "name", "email", "status", "plan", "credits", "credits_spent", "low_credit_threshold", "aliases", "subaccounts", "parent_id", "created_at", "alias_limit_override", "subaccount_limit_override", "updated_at"}
	checkFields(t, "account", res.body["account"], accountFields...)
	a, key := res.body["account"].(map[string]any), str(res.body, "key")
	id := str(a, "id")
	if !strings.HasPrefix(id, "acc_") || str(a, "name") != "Acme Inc" || str(a, "email") != "ops@acme.test" || str(a, "status") != "active" ||
		a["credits"] != float64(1200) || a["parent_id"] != nil || a["alias_limit_override"] != nil ||
		str(a, "created_at") != t0.Format(time.RFC3339) || str(a, "updated_at") != t0.Format(time.RFC3339) ||
		str(a, "plan", "name") != "pro" || dig(a, "plan", "alias_limit") != float64(5) || dig(a, "plan", "rate_limit_per_minute") != float64(600) ||
		dig(a, "aliases", "used") != float64(0) || dig(a, "aliases", "limit") != float64(5) {
		t.Errorf("created account = %s", res.raw)
	}
	if !store.WellFormedKey(key) {
		t.Fatalf("created key %q is not a key", key)
	}
	if r := e.validateJSON(key); r.status != 200 || str(r.body, "account", "id") != id {
		t.Errorf("the new key does not validate: %d %s", r.status, r.raw)
	}
	// The key is shown once: reading the account again does not show it.
	e.clock.Add(time.Minute)
	res = e.admin("GET", "/admin/v1/accounts/"+id, "")
	if res.status != 200 {
		t.Fatalf("get: %d %s", res.status, res.raw)
	}
	checkFields(t, "account", res.body, accountFields...)
	if strings.Contains(res.raw, key) || str(res.body, "id") != id || res.body["credits"] != float64(1200) {
		t.Errorf("get = %s", res.raw)
	}
	checkError(t, e.admin("GET", "/admin/v1/accounts/acc_0000000000000000", ""), http.StatusNotFound, "NOT_FOUND")
	checkError(t, e.admin("GET", "/admin/v1/accounts/nonsense", ""), http.StatusNotFound, "NOT_FOUND")
	checkError(t, e.admin("GET", "/admin/v1/accounts/%27%3B--", ""), http.StatusNotFound, "NOT_FOUND")

	// Patch: plan, status, alias-limit override set and cleared.
	res = e.admin("PATCH", "/admin/v1/accounts/"+id, `{"plan":"mega","status":"suspended","alias_limit":40}`)
	if res.status != 200 || str(res.body, "plan", "name") != "mega" || str(res.body, "status") != "suspended" ||
		res.body["alias_limit_override"] != float64(40) || dig(res.body, "aliases", "limit") != float64(40) ||
		str(res.body, "updated_at") != t0.Add(time.Minute).Format(time.RFC3339) {
		t.Errorf("patch: %d %s", res.status, res.raw)
	}
	checkFailure(t, e.validateHeader(key), 401, "ACCOUNT_SUSPENDED")
	res = e.admin("PATCH", "/admin/v1/accounts/"+id, `{}`)
	if res.status != 200 || str(res.body, "status") != "suspended" || res.body["alias_limit_override"] != float64(40) {
		t.Errorf("empty patch: %d %s", res.status, res.raw)
	}
	res = e.admin("PATCH", "/admin/v1/accounts/"+id, `{"status":"active","alias_limit":null}`)
	if res.status != 200 || str(res.body, "status") != "active" || res.body["alias_limit_override"] != nil || dig(res.body, "aliases", "limit") != float64(25) {
		t.Errorf("clearing the override: %d %s", res.status, res.raw)
	}
	if r := e.validateHeader(key); r.status != 200 || str(r.body, "account", "plan") != "mega" {
		t.Errorf("after reactivation: %d %s", r.status, r.raw)
	}
	for _, body := range []string{
		``, `{`, `[]`, `{"status":"deleted"}`, `{"status":"Active"}`, `{"status":1}`, `{"plan":"platinum"}`, `{"plan":"Bad Name"}`,
		`{"plan":null,"status":"x"}`, `{"alias_limit":-1}`, `{"alias_limit":1000001}`, `{"alias_limit":"5"}`, `{"alias_limit":1.5}`,
		`{"alias_limit":99999999999999999999}`, `{"name":"renamed"}`, `{"status":"active","status":"suspended"}`,
	} {
		res := e.admin("PATCH", "/admin/v1/accounts/"+id, body)
		checkError(t, res, http.StatusBadRequest, "INVALID_REQUEST")
	}
	res = e.admin("PATCH", "/admin/v1/accounts/"+id, `{"status":"deleted"}`)
	if dig(res.body, "error", "fields", "status") == nil {
		t.Errorf("bad status: the error does not name the field: %s", res.raw)
	}
	checkError(t, e.admin("PATCH", "/admin/v1/accounts/acc_0000000000000000", `{"status":"suspended"}`), http.StatusNotFound, "NOT_FOUND")
	if r := e.admin("GET", "/admin/v1/accounts/"+id, ""); str(r.body, "status") != "active" || str(r.body, "plan", "name") != "mega" {
		t.Errorf("refused patches changed the account: %s", r.raw)
	}

	// Refused creations.
	for _, body := range []string{
		``, `{`, `null`, `[]`, `{}`,
		`{"email":"a@example.com","plan":"free"}`,
		`{"name":"a","plan":"free"}`,
		`{"name":"a","email":"a@example.com"}`,
		`{"name":"a","email":"not an email","plan":"free"}`,
		`{"name":"a","email":"a@example.com","plan":"platinum"}`,
		`{"name":"a","email":"a@example.com","plan":"Free"}`,
		`{"name":"a","email":"a@example.com","plan":"free","credits":-1}`,
		`{"name":"a","email":"a@example.com","plan":"free","credits":1.5}`,
		`{"name":"a","email":"a@example.com","plan":"free","credits":"10"}`,
		`{"name":"a","email":"a@example.com","plan":"free","credits":1000000000001}`,
		`{"name":"a","email":"a@example.com","plan":"free","credits":99999999999999999999}`,
		`{"name":"a","email":"a@example.com","plan":"free","color":"red"}`,
		`{"name":"` + strings.Repeat("n", 101) + `","email":"a@example.com","plan":"free"}`,
		`{"name":"a\u0007b","email":"a@example.com","plan":"free"}`,
		`{"name":"a","email":"a@example.com","plan":"free"} {}`,
	} {
		res := e.admin("POST", "/admin/v1/accounts", body)
		checkError(t, res, http.StatusBadRequest, "INVALID_REQUEST")
	}
	res = e.admin("POST", "/admin/v1/accounts", `{"name":"a","email":"a@example.com","plan":"platinum"}`)
	if dig(res.body, "error", "fields", "plan") == nil {
		t.Errorf("unknown plan: the error does not name the field: %s", res.raw)
	}
	checkError(t, e.do("POST", "/admin/v1/accounts", "text/plain", `{"name":"a","email":"a@example.com","plan":"free"}`, "Authorization", "Bearer "+testToken),
		http.StatusUnsupportedMediaType, "INVALID_REQUEST")
	if n := countEvents(t, e, "account.created"); n != 1 {
		t.Errorf("%d accounts created, want 1", n)
	}
}

func TestAdminCredits(t *testing.T) {
	e := newEnv(t, testToken)
	id, key := e.createAccount("Acme", "pro", 100)
	path := "/admin/v1/accounts/" + id + "/credits"

	res := e.admin("POST", path, `{"amount":500,"reason":"purchase #42"}`)
	if res.status != 200 || res.body["credits"] != float64(600) || str(res.body, "id") != id {
		t.Errorf("add 500: %d %s", res.status, res.raw)
	}
	if r := e.validateJSON(key); dig(r.body, "account", "credits") != float64(600) {
		t.Errorf("validate right after adding credits: %s", r.raw)
	}
	res = e.admin("POST", path, `{"amount":-600}`)
	if res.status != 200 || res.body["credits"] != float64(0) {
		t.Errorf("take the pool to zero: %d %s", res.status, res.raw)
	}
	checkError(t, e.admin("POST", path, `{"amount":-1}`), http.StatusPaymentRequired, "INSUFFICIENT_CREDITS")
	for _, body := range []string{``, `{}`, `{"amount":0}`, `{"amount":"5"}`, `{"amount":1.5}`, `{"amount":1000000000001}`,
		`{"amount":99999999999999999999}`, `{"amount":5,"reason":"` + strings.Repeat("r", 501) + `"}`, `{"amount":5,"note":"x"}`} {
		checkError(t, e.admin("POST", path, body), http.StatusBadRequest, "INVALID_REQUEST")
	}
	checkError(t, e.admin("POST", "/admin/v1/accounts/acc_0000000000000000/credits", `{"amount":5}`), http.StatusNotFound, "NOT_FOUND")
	if r := e.admin("GET", "/admin/v1/accounts/"+id, ""); r.body["credits"] != float64(0) {
		t.Errorf("refused credit changes moved the pool: %s", r.raw)
	}
}

func TestAdminPlans(t *testing.T) {
	e := newEnv(t, testToken)
	res := e.admin("GET", "/admin/v1/plans", "")
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	checkFields(t, "plans answer", res.body, "plans")
	plans, _ := res.body["plans"].([]any)
	want := []string{"free 0 0 60", "pro 5 5 600", "mega 25 25 3000", "enterprise <nil> <nil> <nil>"}
	if len(plans) != len(want) {
		t.Fatalf("plans = %s", res.raw)
	}
	for i, p := range plans {
		checkFields(t, "plan", p, "name", "alias_limit", "subaccount_limit", "rate_limit_per_minute", "updated_at")
		m := p.(map[string]any)
		if got := fmt.Sprint(m["name"], " ", m["alias_limit"], " ", m["subaccount_limit"], " ", m["rate_limit_per_minute"]); got != want[i] {
			t.Errorf("plan %d = %s, want %s", i, got, want[i])
		}
	}

	e.clock.Add(time.Hour)
	res = e.admin("PUT", "/admin/v1/plans/gold?create=true", `{"alias_limit":10,"subaccount_limit":"per-account","rate_limit_per_minute":"unlimited"}`)
	if res.status != 200 {
		t.Fatalf("put gold: %d %s", res.status, res.raw)
	}
	checkFields(t, "plan", res.body, "name", "alias_limit", "subaccount_limit", "rate_limit_per_minute", "updated_at")
	if str(res.body, "name") != "gold" || res.body["alias_limit"] != float64(10) || res.body["rate_limit_per_minute"] != nil ||
		res.body["subaccount_limit"] != nil || str(res.body, "updated_at") != t0.Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("put gold = %s", res.raw)
	}
	res = e.admin("PUT", "/admin/v1/plans/pro", `{"alias_limit":7,"rate_limit_per_minute":700}`)
	if res.status != 200 || res.body["alias_limit"] != float64(7) || res.body["rate_limit_per_minute"] != float64(700) || res.body["subaccount_limit"] != float64(5) {
		t.Errorf("change pro: %d %s", res.status, res.raw)
	}
	if r := e.admin("GET", "/admin/v1/plans", ""); len(r.body["plans"].([]any)) != 5 {
		t.Errorf("after adding gold: %s", r.raw)
	}
	// An account can move to the new plan and validation says so at once.
	id, key := e.createAccount("Acme", "pro", 0)
	if r := e.admin("PATCH", "/admin/v1/accounts/"+id, `{"plan":"gold"}`); r.status != 200 || dig(r.body, "aliases", "limit") != float64(10) {
		t.Errorf("move to gold: %d %s", r.status, r.raw)
	}
	if r := e.validateJSON(key); str(r.body, "account", "plan") != "gold" {
		t.Errorf("validate after the plan change: %s", r.raw)
	}

	for _, tt := range []struct{ name, body string }{
		{"Gold", `{"alias_limit":1,"rate_limit_per_minute":1}`},
		{"gold%20plan", `{"alias_limit":1,"rate_limit_per_minute":1}`},
		{strings.Repeat("g", 33), `{"alias_limit":1,"rate_limit_per_minute":1}`},
		{"gold", ``},
		{"gold", `{`},
		{"gold", `{"alias_limit":-1,"rate_limit_per_minute":1}`},
		{"gold", `{"alias_limit":1,"rate_limit_per_minute":0}`},
		{"gold", `{"alias_limit":"1"}`},
		{"gold", `{"alias_limit":1,"burst":3}`},
		{"gold", `{"alias_limit":1000001}`},
		{"gold", `{"subaccount_limit":-1}`},
		{"gold", `{"rate_limit_per_minute":null}`},
		{"gold", `{"alias_limit":null}`},
		{"gold", `{"rate_limit_per_minute":"per-account"}`},
		{"gold", `{"alias_limit":"unlimited"}`},
		{"gold?create=yes", `{"alias_limit":1}`},
	} {
		checkError(t, e.admin("PUT", "/admin/v1/plans/"+tt.name, tt.body), http.StatusBadRequest, "INVALID_REQUEST")
	}
	if r := e.admin("GET", "/admin/v1/plans", ""); !strings.Contains(r.raw, `"name":"gold","alias_limit":10,`) {
		t.Errorf("refused plan changes altered gold: %s", r.raw)
	}
}

func TestAdminListAccounts(t *testing.T) {
	e := newEnv(t, testToken)
	var ids []string
	for _, name := range []string{"Acme Studio", "Beta Shop", "Gamma", "acme two"} {
		id, _ := e.createAccount(name, "pro", 10)
		ids = append(ids, id)
	}
	page := func(query string) ([]string, any) {
		t.Helper()
		res := e.admin("GET", "/admin/v1/accounts"+query, "")
		if res.status != 200 {
			t.Fatalf("GET /admin/v1/accounts%s: %d %s", query, res.status, res.raw)
		}
		checkFields(t, "page", res.body, "accounts", "next_after")
		var out []string
		for _, a := range res.body["accounts"].([]any) {
			out = append(out, str(a.(map[string]any), "id"))
		}
		return out, res.body["next_after"]
	}
	got, next := page("")
	if strings.Join(got, ",") != strings.Join(ids, ",") || next != nil {
		t.Errorf("all accounts: %v next %v, want %v and no next page", got, next, ids)
	}
	// Each item is the account as GET /admin/v1/accounts/{id} shows it.
	one := e.admin("GET", "/admin/v1/accounts/"+ids[1], "")
	all := e.admin("GET", "/admin/v1/accounts", "")
	item, _ := json.Marshal(all.body["accounts"].([]any)[1])
	if want, _ := json.Marshal(one.body); string(item) != string(want) {
		t.Errorf("list item %s\nwant      %s", item, want)
	}

	// Pages of two, then the rest; next_after is the last id of a full page.
	got, next = page("?limit=2")
	if strings.Join(got, ",") != ids[0]+","+ids[1] || next != ids[1] {
		t.Errorf("first page: %v next %v", got, next)
	}
	got, next = page("?limit=2&after=" + ids[1])
	if strings.Join(got, ",") != ids[2]+","+ids[3] || next != ids[3] {
		t.Errorf("second page: %v next %v", got, next)
	}
	if got, next = page("?limit=2&after=" + ids[3]); len(got) != 0 || next != nil {
		t.Errorf("past the end: %v next %v", got, next)
	}

	// Search by name or email, any case, with paging.
	if got, _ = page("?search=ACME"); strings.Join(got, ",") != ids[0]+","+ids[3] {
		t.Errorf("search=ACME: %v, want Acme Studio and acme two", got)
	}
	if got, _ = page("?search=betashop%40example"); strings.Join(got, ",") != ids[1] {
		t.Errorf("search by email: %v, want Beta Shop", got)
	}
	if got, next = page("?search=acme&limit=1&after=" + ids[0]); strings.Join(got, ",") != ids[3] || next != ids[3] {
		t.Errorf("search=acme after the first: %v next %v", got, next)
	}
	if got, _ = page("?search=nobody"); len(got) != 0 {
		t.Errorf("search=nobody: %v", got)
	}

	for query, field := range map[string]string{
		"?limit=0": "limit", "?limit=101": "limit", "?limit=x": "limit",
		"?after=acc_0000000000000000": "after", "?after=nonsense": "after",
		"?search=" + strings.Repeat("a", 101): "search", "?search=%00": "search", "?search=%FF": "search",
	} {
		res := e.admin("GET", "/admin/v1/accounts"+query, "")
		checkError(t, res, http.StatusBadRequest, "INVALID_REQUEST")
		if dig(res.body, "error", "fields", field) == nil {
			t.Errorf("%s: the error does not name %s: %s", query, field, res.raw)
		}
	}
}

func TestAdminResetKey(t *testing.T) {
	e := newEnv(t, testToken)
	id, lost := e.createAccount("Acme", "pro", 10)
	_, other := e.createAccount("Other", "pro", 10)
	// The owner is suspended too: the operator can still let them back in.
	if r := e.admin("PATCH", "/admin/v1/accounts/"+id, `{"status":"suspended"}`); r.status != 200 {
		t.Fatalf("suspend: %d %s", r.status, r.raw)
	}

	res := e.admin("POST", "/admin/v1/accounts/"+id+"/reset-key", `{"grace_period":"24h"}`)
	if res.status != 200 {
		t.Fatalf("reset-key: %d %s", res.status, res.raw)
	}
	checkFields(t, "reset answer", res.body, "key", "key_id", "hint", "previous")
	checkFields(t, "previous", res.body["previous"], "id", "hint", "valid_until")
	k2 := str(res.body, "key")
	if !store.WellFormedKey(k2) || str(res.body, "hint") != store.KeyHint(k2) || str(res.body, "previous", "hint") != store.KeyHint(lost) ||
		str(res.body, "previous", "valid_until") != t0.Add(24*time.Hour).Format(time.RFC3339) {
		t.Errorf("reset answer = %s", res.raw)
	}
	if r := e.admin("PATCH", "/admin/v1/accounts/"+id, `{"status":"active"}`); r.status != 200 {
		t.Fatalf("unsuspend: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/v1/account", "", "", "X-API-Key", k2); r.status != 200 || str(r.body, "id") != id {
		t.Errorf("the new key does not manage the account: %d %s", r.status, r.raw)
	}
	if r := e.validateJSON(lost); r.status != 200 {
		t.Errorf("the old key inside its grace: %d %s", r.status, r.raw)
	}

	// Without grace: the new key only; the key in grace dies too.
	e.clock.Add(time.Minute)
	res = e.admin("POST", "/admin/v1/accounts/"+id+"/reset-key", "")
	if res.status != 200 || str(res.body, "previous", "valid_until") != e.clock.Now().Format(time.RFC3339) {
		t.Fatalf("reset-key without a body: %d %s", res.status, res.raw)
	}
	k3 := str(res.body, "key")
	checkFailure(t, e.validateJSON(lost), 401, "REVOKED")
	checkFailure(t, e.validateJSON(k2), 401, "REVOKED")
	if r := e.validateJSON(k3); r.status != 200 {
		t.Errorf("the newest key: %d %s", r.status, r.raw)
	}
	if r := e.validateJSON(other); r.status != 200 {
		t.Errorf("another account's key after the resets: %d %s", r.status, r.raw)
	}

	// key.reset twice, written as the operator's; key.revoked for the key
	// whose grace the second reset ended.
	conn := openSQL(t, e.dsn)
	rows, err := conn.Query(`SELECT type, actor_type, coalesce(actor_id, '') FROM events WHERE account_id = ? AND type IN ('key.reset', 'key.revoked') ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var typ, actor, actorID string
		if err := rows.Scan(&typ, &actor, &actorID); err != nil {
			t.Fatal(err)
		}
		got = append(got, typ+" by "+actor+actorID)
	}
	if want := "key.reset by operator,key.reset by operator,key.revoked by operator"; strings.Join(got, ",") != want {
		t.Errorf("events = %v, want %s", got, want)
	}

	for _, tt := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/admin/v1/accounts/acc_0000000000000000/reset-key", `{}`, http.StatusNotFound, "NOT_FOUND"},
		{"/admin/v1/accounts/" + id + "/reset-key", `{"grace_period":"169h"}`, http.StatusBadRequest, "INVALID_REQUEST"},
		{"/admin/v1/accounts/" + id + "/reset-key", `{"grace":"1h"}`, http.StatusBadRequest, "INVALID_REQUEST"},
	} {
		checkError(t, e.admin("POST", tt.path, tt.body), tt.status, tt.code)
	}
	if r := e.validateJSON(k3); r.status != 200 {
		t.Errorf("refused resets touched the key: %d %s", r.status, r.raw)
	}
}

// Plan limits fail closed: a limit left out keeps its value, "none" is only
// ever said in words, and a mistyped name creates nothing.
func TestAdminPlanChangesFailClosed(t *testing.T) {
	e := newEnv(t, testToken)
	plan := func(name string) string {
		t.Helper()
		for _, p := range e.admin("GET", "/admin/v1/plans", "").body["plans"].([]any) {
			if m := p.(map[string]any); m["name"] == name {
				return fmt.Sprint(m["alias_limit"], " ", m["subaccount_limit"], " ", m["rate_limit_per_minute"])
			}
		}
		return "missing"
	}

	// Only alias_limit: the rate limit and the subaccount limit stay.
	if res := e.admin("PUT", "/admin/v1/plans/pro", `{"alias_limit":9}`); res.status != 200 {
		t.Fatalf("change pro's alias limit: %d %s", res.status, res.raw)
	}
	if got := plan("pro"); got != "9 5 600" {
		t.Errorf("pro after changing its alias limit = %s, want 9 5 600", got)
	}
	// An empty change changes nothing.
	if res := e.admin("PUT", "/admin/v1/plans/pro", `{}`); res.status != 200 || plan("pro") != "9 5 600" {
		t.Errorf("empty change: %d %s; pro = %s", res.status, res.raw, plan("pro"))
	}
	// Unlimited and per-account are said explicitly.
	if res := e.admin("PUT", "/admin/v1/plans/pro", `{"rate_limit_per_minute":"unlimited","subaccount_limit":"per-account"}`); res.status != 200 {
		t.Fatalf("explicit none: %d %s", res.status, res.raw)
	}
	if got := plan("pro"); got != "9 <nil> <nil>" {
		t.Errorf("pro after the explicit none = %s", got)
	}

	// A mistyped name is 404 and creates nothing, whatever the body.
	for _, body := range []string{`{}`, `{"alias_limit":3}`, `{"alias_limit":3,"subaccount_limit":1,"rate_limit_per_minute":60}`} {
		checkError(t, e.admin("PUT", "/admin/v1/plans/porr", body), http.StatusNotFound, "NOT_FOUND")
	}
	if got := plan("porr"); got != "missing" {
		t.Errorf("a mistyped name created plan porr: %s", got)
	}
	// Creating needs every limit.
	for _, body := range []string{`{}`, `{"alias_limit":3,"rate_limit_per_minute":60}`, `{"alias_limit":3,"subaccount_limit":1}`} {
		res := e.admin("PUT", "/admin/v1/plans/silver?create=true", body)
		checkError(t, res, http.StatusBadRequest, "INVALID_REQUEST")
		if len(dig(res.body, "error", "fields").(map[string]any)) != 1 {
			t.Errorf("create with %s: the error does not name the missing field: %s", body, res.raw)
		}
	}
	if got := plan("silver"); got != "missing" {
		t.Errorf("an incomplete create made plan silver: %s", got)
	}
	res := e.admin("PUT", "/admin/v1/plans/silver?create=true", `{"alias_limit":3,"subaccount_limit":1,"rate_limit_per_minute":60}`)
	if res.status != 200 || plan("silver") != "3 1 60" {
		t.Errorf("create silver: %d %s; silver = %s", res.status, res.raw, plan("silver"))
	}
}

func TestSubaccountLimitIsAdminAdjustable(t *testing.T) {
	e := newEnv(t, testToken)
	id, key := e.createAccount("Big Co", "enterprise", 100)
	create := func(i int) response {
		return e.doJSON("POST", "/v1/subaccounts", fmt.Sprintf(`{"name":"Client %d","email":"c%d@client.test"}`, i, i), "X-API-Key", key)
	}
	// Enterprise sets the limit per account: none until the operator does.
	res := create(0)
	checkError(t, res, http.StatusForbidden, "SUBACCOUNT_LIMIT_REACHED")
	if dig(res.body, "error", "message") == "" {
		t.Errorf("the refusal says nothing: %s", res.raw)
	}
	res = e.admin("PATCH", "/admin/v1/accounts/"+id, `{"subaccount_limit":1}`)
	if res.status != 200 || res.body["subaccount_limit_override"] != 1.0 || dig(res.body, "subaccounts", "limit") != 1.0 {
		t.Fatalf("set the override: %d %s", res.status, res.raw)
	}
	if res := create(1); res.status != http.StatusCreated {
		t.Fatalf("first subaccount under the override: %d %s", res.status, res.raw)
	}
	checkError(t, create(2), http.StatusForbidden, "SUBACCOUNT_LIMIT_REACHED")
	for _, body := range []string{`{"subaccount_limit":-1}`, `{"subaccount_limit":1000001}`, `{"subaccount_limit":"2"}`} {
		checkError(t, e.admin("PATCH", "/admin/v1/accounts/"+id, body), http.StatusBadRequest, "INVALID_REQUEST")
	}
	// Clearing the override falls back to the plan, which the operator can change.
	if res := e.admin("PATCH", "/admin/v1/accounts/"+id, `{"subaccount_limit":null}`); res.status != 200 || res.body["subaccount_limit_override"] != nil {
		t.Fatalf("clear the override: %d %s", res.status, res.raw)
	}
	if res := e.admin("PUT", "/admin/v1/plans/enterprise", `{"subaccount_limit":2}`); res.status != 200 || res.body["subaccount_limit"] != 2.0 {
		t.Fatalf("raise enterprise: %d %s", res.status, res.raw)
	}
	if res := create(3); res.status != http.StatusCreated {
		t.Fatalf("second subaccount under the plan's limit: %d %s", res.status, res.raw)
	}
	res = e.do("GET", "/v1/account", "", "", "X-API-Key", key)
	if dig(res.body, "subaccounts", "used") != 2.0 || dig(res.body, "subaccounts", "limit") != 2.0 || dig(res.body, "plan", "subaccount_limit") != 2.0 {
		t.Errorf("account after two subaccounts: %s", res.raw)
	}
}
