package pluginapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Refusals name the JSON field and say the rule in the client's terms.
func TestInputRefusalsSpeakTheClientsTerms(t *testing.T) {
	e := newEnv(t, testToken)
	id, key := e.createAccount("Acme", "pro", 1000)
	_, subKey := func() (string, string) {
		res := e.doJSON("POST", "/v1/subaccounts", `{"name":"Client","email":"c@client.test","credits":10}`, "X-API-Key", key)
		if res.status != http.StatusCreated {
			t.Fatalf("create subaccount: %d %s", res.status, res.raw)
		}
		return str(res.body, "account", "id"), str(res.body, "key")
	}()
	sub := e.doJSON("GET", "/v1/subaccounts", "", "X-API-Key", key)
	subID := str(sub.body["subaccounts"].([]any)[0].(map[string]any), "id")
	_ = subKey

	grammar := `must be a number and a unit (s, m, h or d), such as "90m", "1.5h" or "7d"`
	for _, tt := range []struct {
		method, path, body, field, want string
		admin                           bool
	}{
		{"POST", "/v1/usage", `{"units":1000001}`, "units", "must be between 1 and 1000000", false},
		{"POST", "/v1/usage", `{"units":0}`, "units", "must be between 1 and 1000000", false},
		{"POST", "/v1/usage", `{"units":-3}`, "units", "must be between 1 and 1000000", false},
		{"POST", "/v1/usage", `{"units":1,"scope":"` + strings.Repeat("s", 65) + `"}`, "scope", "must be at most 64 characters long", false},
		{"POST", "/v1/subaccounts/" + subID + "/credits", `{"amount":0}`, "amount", "must not be 0", false},
		{"POST", "/v1/subaccounts", `{"name":"x","email":"x@client.test","credits":-1}`, "credits", "must be at least 0", false},
		{"POST", "/admin/v1/accounts/" + id + "/credits", `{"amount":0}`, "amount", "must not be 0", true},
		{"POST", "/v1/aliases", `{"name":"x","ttl":3600}`, "ttl", grammar, false},
		{"POST", "/v1/aliases", `{"name":"x","ttl":"1h30m"}`, "ttl", grammar, false},
		{"POST", "/v1/aliases", `{"name":"x","ttl":"10000d"}`, "ttl", "must be between 1m and 3650d", false},
		{"POST", "/v1/aliases", `{"name":"x","ttl":"9223372036854775807ns"}`, "ttl", grammar, false},
		{"POST", "/v1/aliases", `{"name":"x","ttl":"59s"}`, "ttl", "must be between 1m and 3650d", false},
		{"POST", "/v1/aliases", `{"name":"x","expires_at":"` + t0.Add(30*time.Second).Format(time.RFC3339) + `"}`, "expires_at",
			"must be between 1 minute and 3650 days from now", false},
		{"POST", "/v1/aliases", `{"name":"x","expires_at":"` + t0.AddDate(11, 0, 0).Format(time.RFC3339) + `"}`, "expires_at",
			"must be between 1 minute and 3650 days from now", false},
		{"POST", "/v1/aliases", `{"name":"x","expires_at":3600}`, "expires_at", "must be a time in RFC 3339 form, such as 2026-12-01T00:00:00Z", false},
		{"POST", "/v1/aliases", `{"name":"x","expires_at":"tomorrow"}`, "expires_at", "must be a time in RFC 3339 form, such as 2026-12-01T00:00:00Z", false},
		{"POST", "/v1/aliases", `{"name":"x","scopes":["` + strings.Repeat("s", 66) + `"]}`, "scopes[0]", "must be at most 65 characters long", false},
		{"POST", "/v1/account/reset-key", `{"grace_period":3600}`, "grace_period", grammar, false},
		{"POST", "/v1/account/reset-key", `{"grace_period":"8d"}`, "grace_period", "must be between 0s and 168h", false},
	} {
		var res response
		if tt.admin {
			res = e.admin(tt.method, tt.path, tt.body)
		} else {
			res = e.doJSON(tt.method, tt.path, tt.body, "X-API-Key", key)
		}
		checkError(t, res, http.StatusBadRequest, "INVALID_REQUEST")
		got, ok := dig(res.body, "error", "fields", tt.field).(string)
		if !ok || (tt.want != "" && got != tt.want) {
			t.Errorf("%s %s: fields = %v, want %s: %q", tt.path, tt.body, dig(res.body, "error", "fields"), tt.field, tt.want)
		}
		if strings.Contains(res.raw, "Fields") || strings.Contains(res.raw, "characters") && tt.field == "units" {
			t.Errorf("%s %s: the message speaks Go: %s", tt.path, tt.body, res.raw)
		}
	}
}

// ttl and expires_at share their bounds, and the grammar takes decimals
// in every unit.
func TestAliasExpiryGrammarAndBounds(t *testing.T) {
	e := newEnv(t, testToken)
	_, key := e.createAccount("Acme", "mega", 0)
	for i, tt := range []struct {
		body string
		want time.Time
	}{
		{`{"name":"a","ttl":"1.5d"}`, t0.Add(36 * time.Hour)},
		{`{"name":"b","ttl":"1m"}`, t0.Add(time.Minute)},
		{`{"name":"c","ttl":"3650d"}`, t0.Add(3650 * 24 * time.Hour)},
		{`{"name":"d","expires_at":"` + t0.Add(time.Minute).Format(time.RFC3339) + `"}`, t0.Add(time.Minute)},
	} {
		res := e.doJSON("POST", "/v1/aliases", tt.body, "X-API-Key", key)
		if res.status != http.StatusCreated || str(res.body, "alias", "expires_at") != tt.want.Format(time.RFC3339) {
			t.Errorf("%d %s: %d %s, want expires_at %s", i, tt.body, res.status, res.raw, tt.want.Format(time.RFC3339))
		}
	}
}
