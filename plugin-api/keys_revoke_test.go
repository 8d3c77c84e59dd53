package pluginapi_test

import (
	"net/http"
	"testing"
	"time"
)

// TestResetChainKillsLeakedKeys walks the leaked-key case through the API:
// resets with a grace, then one without, leave only the newest key valid.
func TestResetChainKillsLeakedKeys(t *testing.T) {
	e := newEnv(t, testToken)
	_, k1 := e.createAccount("Acme", "pro", 10)
	keys, ids := []string{k1}, []string{""}
	for _, body := range []string{`{"grace_period":"1h"}`, `{"grace_period":"1h"}`, `{}`} {
		e.clock.Add(time.Minute)
		res := e.doJSON("POST", "/v1/account/reset-key", body, "X-API-Key", keys[len(keys)-1])
		if res.status != 200 {
			t.Fatalf("reset %s: %d %s", body, res.status, res.raw)
		}
		ids[len(ids)-1] = str(res.body, "previous", "id")
		keys, ids = append(keys, str(res.body, "key")), append(ids, str(res.body, "key_id"))
	}
	for i, k := range keys[:3] {
		checkFailure(t, e.validateJSON(k), 401, "REVOKED")
		if t.Failed() {
			t.Fatalf("K%d still validates after a reset without grace", i+1)
		}
	}
	if r := e.validateJSON(keys[3]); r.status != 200 {
		t.Errorf("K4: %d %s", r.status, r.raw)
	}
	list := e.do("GET", "/v1/keys", "", "", "X-API-Key", keys[3])
	for i, id := range ids {
		k := keyByID(t, list, id)
		want := "revoked"
		if i == 3 {
			want = "active"
		}
		if str(k, "status") != want || k["in_grace"] != false {
			t.Errorf("K%d in GET /v1/keys: %v, want %s and not in grace", i+1, k, want)
		}
	}
	if n := countEvents(t, e, "key.revoked"); n != 2 {
		t.Errorf("%d key.revoked events, want 2 (K1 and K2, whose grace the resets ended)", n)
	}
}

func TestRevokeKeyInGrace(t *testing.T) {
	e := newEnv(t, testToken)
	id, k1 := e.createAccount("Acme", "pro", 10)
	_, otherKey := e.createAccount("Other", "pro", 10)
	reset := func(key string) (newKey, newID, oldID string) {
		t.Helper()
		res := e.doJSON("POST", "/v1/account/reset-key", `{"grace_period":"24h"}`, "X-API-Key", key)
		if res.status != 200 {
			t.Fatalf("reset: %d %s", res.status, res.raw)
		}
		return str(res.body, "key"), str(res.body, "key_id"), str(res.body, "previous", "id")
	}
	k2, _, k1ID := reset(k1)
	e.clock.Add(time.Minute)
	k3, k3ID, k2ID := reset(k2)
	alias := e.doJSON("POST", "/v1/aliases", `{"name":"Client"}`, "X-API-Key", k3)
	if alias.status != 201 {
		t.Fatalf("create alias: %d %s", alias.status, alias.raw)
	}
	aliasID := str(alias.body, "alias", "id")

	// GET /v1/keys shows K2 in grace with its deadline, K1 revoked by the
	// second reset.
	deadline := e.clock.Now().Add(24 * time.Hour).Format(time.RFC3339)
	list := e.do("GET", "/v1/keys", "", "", "X-API-Key", k3)
	if k := keyByID(t, list, k2ID); str(k, "status") != "active" || k["in_grace"] != true || str(k, "valid_until") != deadline {
		t.Errorf("K2 in GET /v1/keys: %v, want active, in grace until %s", k, deadline)
	}
	if k := keyByID(t, list, k1ID); str(k, "status") != "revoked" || k["in_grace"] != false {
		t.Errorf("K1 in GET /v1/keys: %v, want revoked", k)
	}
	if k := keyByID(t, list, k3ID); str(k, "status") != "active" || k["in_grace"] != false || k["valid_until"] != nil {
		t.Errorf("K3 in GET /v1/keys: %v, want active, not in grace", k)
	}
	checkFailure(t, e.validateJSON(k1), 401, "REVOKED")
	if r := e.validateJSON(k2); r.status != 200 {
		t.Fatalf("K2 in grace: %d %s", r.status, r.raw)
	}
	aliasKey := str(alias.body, "key")

	// Refused: the current primary, an alias, unknown and foreign ids, a
	// body with fields, an alias or the key in grace as credential.
	for _, tt := range []struct {
		id, body, key string
		status        int
		code          string
	}{
		{k3ID, "", k3, http.StatusBadRequest, "INVALID_REQUEST"},
		{aliasID, "", k3, http.StatusBadRequest, "INVALID_REQUEST"},
		{"key_0000000000000000", "", k3, http.StatusNotFound, "NOT_FOUND"},
		{k2ID, "", otherKey, http.StatusNotFound, "NOT_FOUND"},
		{k2ID, `{"now":true}`, k3, http.StatusBadRequest, "INVALID_REQUEST"},
		{k2ID, "", aliasKey, http.StatusForbidden, "PRIMARY_KEY_REQUIRED"},
		{k2ID, "", k2, http.StatusUnauthorized, "UNAUTHORIZED"},
	} {
		res := e.doJSON("POST", "/v1/keys/"+tt.id+"/revoke", tt.body, "X-API-Key", tt.key)
		checkError(t, res, tt.status, tt.code)
		if tt.status == http.StatusBadRequest && tt.body == "" && dig(res.body, "error", "fields", "id") == nil {
			t.Errorf("revoking %s: the error does not name id: %s", tt.id, res.raw)
		}
	}
	if r := e.validateJSON(k2); r.status != 200 || countEvents(t, e, "key.revoked") != 1 {
		t.Fatalf("refused revocations changed something: K2 %d, %d key.revoked", r.status, countEvents(t, e, "key.revoked"))
	}

	// The owner ends K2's grace: the answer is the key, the next validate
	// refuses it, key.revoked is written.
	e.clock.Add(time.Minute)
	res := e.doJSON("POST", "/v1/keys/"+k2ID+"/revoke", "", "X-API-Key", k3)
	if res.status != 200 || str(res.body, "id") != k2ID || str(res.body, "status") != "revoked" || res.body["in_grace"] != false ||
		str(res.body, "valid_until") != e.clock.Now().Format(time.RFC3339) || str(res.body, "type") != "primary" {
		t.Fatalf("revoke: %d %s", res.status, res.raw)
	}
	checkFailure(t, e.validateJSON(k2), 401, "REVOKED")
	if r := e.validateJSON(k3); r.status != 200 {
		t.Errorf("K3 after ending K2's grace: %d %s", r.status, r.raw)
	}
	if r := e.validateJSON(aliasKey); r.status != 200 {
		t.Errorf("the alias after ending K2's grace: %d %s", r.status, r.raw)
	}
	if n := countEvents(t, e, "key.revoked"); n != 2 {
		t.Errorf("%d key.revoked events, want 2", n)
	}
	// Again: the same answer, nothing more written.
	if again := e.doJSON("POST", "/v1/keys/"+k2ID+"/revoke", "{}", "X-API-Key", k3); again.status != 200 || str(again.body, "status") != "revoked" {
		t.Errorf("revoking again: %d %s", again.status, again.raw)
	}
	if n := countEvents(t, e, "key.revoked"); n != 2 {
		t.Errorf("revoking again wrote key.revoked: %d in all", n)
	}
	if r := e.admin("GET", "/admin/v1/accounts/"+id, ""); r.status != 200 {
		t.Errorf("account after revocations: %d %s", r.status, r.raw)
	}
}
