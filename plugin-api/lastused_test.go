package pluginapi

import (
	"net/http"
	"testing"
	"time"
)

// keysByID is GET /v1/keys as a map from key id to key.
func (a *ownerAPI) keysByID(key string) map[string]map[string]any {
	a.t.Helper()
	code, out := a.do("GET", "/v1/keys", key, nil)
	if code != http.StatusOK {
		a.t.Fatalf("GET /v1/keys: %d %v", code, out)
	}
	m := map[string]map[string]any{}
	for _, k := range out["keys"].([]any) {
		k := k.(map[string]any)
		m[k["id"].(string)] = k
	}
	return m
}

// TestUsageIsALastUse checks that a charge through POST /v1/usage counts
// as a use of the key (last_used_at, before any flush), and that every
// answer showing last_used_at shows what GET /v1/keys shows.
func TestUsageIsALastUse(t *testing.T) {
	a := newOwnerAPI(t)
	_, primary := a.accountWith("pro", 100)
	aliasID, alias := a.alias(primary, map[string]any{"name": "client"})
	primaryID := ""
	for id, k := range a.keysByID(primary) {
		if k["type"] == "primary" {
			primaryID = id
		}
		if k["last_used_at"] != nil {
			t.Fatalf("key %s used before any use: %v", id, k["last_used_at"])
		}
	}

	a.now = a.now.Add(90 * time.Second)
	usedAt := a.now.Format(time.RFC3339)
	for _, key := range []string{alias, primary} {
		code, out := a.do("POST", "/v1/usage", key, map[string]any{"units": 2, "idempotency_key": "order-" + key[:4]})
		if code != http.StatusOK {
			t.Fatalf("usage: %d %v", code, out)
		}
	}
	keys := a.keysByID(primary)
	for _, id := range []string{aliasID, primaryID} {
		if got := keys[id]["last_used_at"]; got != usedAt {
			t.Errorf("GET /v1/keys: key %s last_used_at = %v after a charge, want %s", id, got, usedAt)
		}
	}

	// A later replay of the same charge is a use too.
	a.now = a.now.Add(time.Minute)
	replayAt := a.now.Format(time.RFC3339)
	if code, out := a.do("POST", "/v1/usage", alias, map[string]any{"units": 2, "idempotency_key": "order-" + alias[:4]}); code != http.StatusOK {
		t.Fatalf("replay: %d %v", code, out)
	}
	keys = a.keysByID(primary)
	if got := keys[aliasID]["last_used_at"]; got != replayAt {
		t.Errorf("after a replayed charge: last_used_at = %v, want %s", got, replayAt)
	}

	// Every answer that shows the alias shows the same last use.
	want := keys[aliasID]["last_used_at"]
	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/v1/aliases/" + aliasID, map[string]any{"name": "renamed"}},
		{"POST", "/v1/aliases/" + aliasID + "/deactivate", nil},
		{"POST", "/v1/aliases/" + aliasID + "/reactivate", nil},
		{"GET", "/v1/aliases/" + aliasID, nil},
	} {
		code, out := a.do(call.method, call.path, primary, call.body)
		if code != http.StatusOK {
			t.Errorf("%s %s: %d %v", call.method, call.path, code, out)
			continue
		}
		if got := out["last_used_at"]; got != want {
			t.Errorf("%s %s: last_used_at = %v, GET /v1/keys shows %v", call.method, call.path, got, want)
		}
	}
	code, out := a.do("PATCH", "/v1/keys/"+primaryID, primary, map[string]any{"name": "main"})
	if code != http.StatusOK || out["last_used_at"] != keys[primaryID]["last_used_at"] {
		t.Errorf("PATCH /v1/keys/{id}: %d last_used_at = %v, GET /v1/keys shows %v", code, out["last_used_at"], keys[primaryID]["last_used_at"])
	}

	// After a flush the stored time and the answers still agree.
	if err := a.db.FlushActivity(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := a.keysByID(primary)[aliasID]["last_used_at"]; got != want {
		t.Errorf("after a flush: last_used_at = %v, want %v", got, want)
	}
}
