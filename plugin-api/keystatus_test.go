package pluginapi_test

import (
	"testing"
	"time"
)

// keyByID finds a key in a GET /v1/keys answer.
func keyByID(t *testing.T, res response, id string) map[string]any {
	t.Helper()
	list, _ := res.body["keys"].([]any)
	for _, k := range list {
		if m, _ := k.(map[string]any); str(m, "id") == id {
			return m
		}
	}
	t.Fatalf("key %s is not in %s", id, res.raw)
	return nil
}

// TestDeactivatedAliasPastExpiryIsExpiredEverywhere: validate and GET
// /v1/keys derive a key's status by the same rule.
func TestDeactivatedAliasPastExpiryIsExpiredEverywhere(t *testing.T) {
	e := newEnv(t, testToken)
	_, key := e.createAccount("Acme", "pro", 10)
	res := e.doJSON("POST", "/v1/aliases", `{"name":"Client","ttl":"1h"}`, "X-API-Key", key)
	if res.status != 201 {
		t.Fatalf("create alias: %d %s", res.status, res.raw)
	}
	id, alias := str(res.body, "alias", "id"), str(res.body, "key")
	if r := e.doJSON("POST", "/v1/aliases/"+id+"/deactivate", "", "X-API-Key", key); r.status != 200 || str(r.body, "status") != "inactive" {
		t.Fatalf("deactivate: %d %s", r.status, r.raw)
	}
	checkFailure(t, e.validateJSON(alias), 401, "INACTIVE")

	e.clock.Add(2 * time.Hour)
	checkFailure(t, e.validateJSON(alias), 401, "EXPIRED")
	list := e.do("GET", "/v1/keys", "", "", "X-API-Key", key)
	if k := keyByID(t, list, id); str(k, "status") != "expired" {
		t.Errorf("GET /v1/keys shows the alias as %q, want expired (as validate says): %v", str(k, "status"), k)
	}
	// The expiry job changes nothing about either answer.
	if _, _, err := e.db.ExpireAliases(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	checkFailure(t, e.validateJSON(alias), 401, "EXPIRED")
	if k := keyByID(t, e.do("GET", "/v1/keys", "", "", "X-API-Key", key), id); str(k, "status") != "expired" {
		t.Errorf("after the expiry job GET /v1/keys shows %q", str(k, "status"))
	}
}
