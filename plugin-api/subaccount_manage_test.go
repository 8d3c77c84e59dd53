package pluginapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// raw sends a request with the given headers and returns the status and the
// body as sent.
func (a *ownerAPI) raw(method, path, body string, headers ...string) (int, string) {
	a.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	a.handler.ServeHTTP(w, r)
	if w.Code >= 500 {
		a.t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body.String())
	}
	return w.Code, w.Body.String()
}

// subaccount creates a subaccount of the account with key parent and
// returns its id and primary key.
func (a *ownerAPI) subaccount(parent, name string, credits int) (id, key string) {
	a.t.Helper()
	code, out := a.do("POST", "/v1/subaccounts", parent, map[string]any{"name": name, "email": "it@" + strings.ToLower(name) + ".example", "credits": credits})
	if code != http.StatusCreated {
		a.t.Fatalf("create subaccount: %d %v", code, out)
	}
	return out["account"].(map[string]any)["id"].(string), out["key"].(string)
}

func (a *ownerAPI) validateKey(key string) (int, string) {
	a.t.Helper()
	code, out := a.validate(url.Values{"key": {key}}.Encode())
	return code, errorCode(out)
}

// auditActions lists the actions of an account's audit log, newest first,
// with their targets.
func (a *ownerAPI) auditActions(key string) []string {
	a.t.Helper()
	code, out := a.do("GET", "/v1/audit", key, nil)
	if code != http.StatusOK {
		a.t.Fatalf("GET /v1/audit: %d %v", code, out)
	}
	var acts []string
	for _, e := range out["events"].([]any) {
		e := e.(map[string]any)
		target, _ := e["target_id"].(string)
		acts = append(acts, e["action"].(string)+" "+target)
	}
	return acts
}

// TestParentManagesSubaccounts checks, through the real router, that a
// parent lists its subaccounts with credits and status (paged), suspends and
// unsuspends them with immediate effect on validation and an audit event,
// cannot lift a suspension the operator made, and sees its subaccounts' key
// hints but never their keys; another account's subaccount is 404.
func TestParentManagesSubaccounts(t *testing.T) {
	a := newOwnerAPI(t)
	adminToken := strings.Repeat("t", 40)
	_, parent := a.accountWith("pro", 1000)
	_, stranger := a.accountWith("pro", 1000)
	s1, s1Key := a.subaccount(parent, "One", 100)
	s2, _ := a.subaccount(parent, "Two", 50)
	s3, _ := a.subaccount(parent, "Three", 0)
	theirs, _ := a.subaccount(stranger, "Theirs", 10)
	_, s1Alias := a.alias(s1Key, map[string]any{"name": "client"})

	// The list: newest first, with credits, status and who suspended it.
	code, out := a.do("GET", "/v1/subaccounts", parent, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/subaccounts: %d %v", code, out)
	}
	var ids []string
	for _, s := range out["subaccounts"].([]any) {
		s := s.(map[string]any)
		ids = append(ids, s["id"].(string))
		if s["status"] != "active" || s["suspended_by"] != nil || s["credits"] == nil {
			t.Errorf("subaccount %v", s)
		}
	}
	if want := []string{s3, s2, s1}; !slices.Equal(ids, want) || out["next_before"] != nil {
		t.Errorf("GET /v1/subaccounts = %v next %v, want %v", ids, out["next_before"], want)
	}
	if got := out["subaccounts"].([]any)[2].(map[string]any)["credits"]; got != float64(100) {
		t.Errorf("credits of the first subaccount = %v, want 100", got)
	}
	code, out = a.do("GET", "/v1/subaccounts?limit=2", parent, nil)
	if code != http.StatusOK || len(out["subaccounts"].([]any)) != 2 || out["next_before"] != s2 {
		t.Fatalf("first page of 2: %d %v", code, out)
	}
	code, out = a.do("GET", "/v1/subaccounts?limit=2&before="+s2, parent, nil)
	if code != http.StatusOK || len(out["subaccounts"].([]any)) != 1 || out["subaccounts"].([]any)[0].(map[string]any)["id"] != s1 || out["next_before"] != nil {
		t.Fatalf("second page of 2: %d %v", code, out)
	}
	for _, bad := range []string{"?limit=0", "?before=" + theirs} {
		if code, out := a.do("GET", "/v1/subaccounts"+bad, parent, nil); code != http.StatusBadRequest {
			t.Errorf("GET /v1/subaccounts%s: %d %v, want 400", bad, code, out)
		}
	}

	// Suspend: the subaccount's keys fail validation and usage at once.
	for _, key := range []string{s1Key, s1Alias} {
		if code, c := a.validateKey(key); code != http.StatusOK {
			t.Fatalf("validate before the suspension: %d %s", code, c)
		}
	}
	for i := 0; i < 2; i++ { // the second time changes nothing
		code, out = a.do("POST", "/v1/subaccounts/"+s1+"/suspend", parent, nil)
		if code != http.StatusOK || out["status"] != "suspended" || out["suspended_by"] != "parent" {
			t.Fatalf("suspend: %d %v", code, out)
		}
	}
	for _, key := range []string{s1Key, s1Alias} {
		if code, c := a.validateKey(key); code != http.StatusUnauthorized || c != "ACCOUNT_SUSPENDED" {
			t.Errorf("validate of a suspended subaccount's key: %d %s, want 401 ACCOUNT_SUSPENDED", code, c)
		}
	}
	if code, out := a.do("POST", "/v1/usage", s1Alias, map[string]any{"units": 1}); code != http.StatusUnauthorized || errorCode(out) != "ACCOUNT_SUSPENDED" {
		t.Errorf("usage with a suspended subaccount's key: %d %v", code, out)
	}
	if acts := a.auditActions(parent); !slices.Contains(acts, "subaccount.suspended "+s1) ||
		slices.Index(acts, "subaccount.suspended "+s1) != slices.IndexFunc(acts, func(s string) bool { return strings.HasPrefix(s, "subaccount.suspended") }) ||
		strings.Count(strings.Join(acts, ","), "subaccount.suspended") != 1 {
		t.Errorf("the parent's audit log: %v, want one subaccount.suspended of %s", acts, s1)
	}
	if acts := a.auditActions(s1Key); !slices.Contains(acts, "subaccount.suspended "+s1) {
		t.Errorf("the subaccount's audit log: %v, want subaccount.suspended", acts)
	}
	// The subaccount cannot lift it itself, by any route.
	for _, path := range []string{"/v1/subaccounts/" + s1 + "/unsuspend", "/v1/account/reset-key"} {
		if code, out := a.do("POST", path, s1Key, map[string]any{}); code != http.StatusForbidden || errorCode(out) != "ACCOUNT_SUSPENDED" {
			t.Errorf("the suspended subaccount calls %s: %d %v, want 403 ACCOUNT_SUSPENDED", path, code, out)
		}
	}

	// Unsuspend: valid again at once.
	code, out = a.do("POST", "/v1/subaccounts/"+s1+"/unsuspend", parent, nil)
	if code != http.StatusOK || out["status"] != "active" || out["suspended_by"] != nil {
		t.Fatalf("unsuspend: %d %v", code, out)
	}
	if code, c := a.validateKey(s1Alias); code != http.StatusOK {
		t.Errorf("validate after the unsuspension: %d %s", code, c)
	}
	if acts := a.auditActions(parent); acts[0] != "subaccount.unsuspended "+s1 {
		t.Errorf("the parent's audit log starts %v, want subaccount.unsuspended %s", acts[:1], s1)
	}

	// The operator's suspension is not the parent's to lift: neither a
	// fresh one nor one repeating the parent's.
	if code, out := a.do("POST", "/v1/subaccounts/"+s2+"/suspend", parent, nil); code != http.StatusOK {
		t.Fatalf("suspend s2: %d %v", code, out)
	}
	for _, id := range []string{s1, s2} {
		if code, body := a.raw("PATCH", "/admin/v1/accounts/"+id, `{"status":"suspended"}`, "Authorization", "Bearer "+adminToken); code != http.StatusOK {
			t.Fatalf("operator suspends %s: %d %s", id, code, body)
		}
		code, out := a.do("POST", "/v1/subaccounts/"+id+"/unsuspend", parent, nil)
		if code != http.StatusForbidden || errorCode(out) != "ACCOUNT_SUSPENDED" {
			t.Errorf("the parent lifts the operator's suspension of %s: %d %v, want 403 ACCOUNT_SUSPENDED", id, code, out)
		}
	}
	code, out = a.do("GET", "/v1/subaccounts", parent, nil)
	for _, s := range out["subaccounts"].([]any) {
		s := s.(map[string]any)
		if (s["id"] == s1 || s["id"] == s2) && (s["status"] != "suspended" || s["suspended_by"] != "operator") {
			t.Errorf("after the operator's suspension: %v", s)
		}
	}
	if code, c := a.validateKey(s1Key); code != http.StatusUnauthorized || c != "ACCOUNT_SUSPENDED" {
		t.Errorf("validate after the parent's refused unsuspension: %d %s", code, c)
	}
	// Once the operator lifts it, the parent may suspend and lift again.
	if code, body := a.raw("PATCH", "/admin/v1/accounts/"+s1, `{"status":"active"}`, "Authorization", "Bearer "+adminToken); code != http.StatusOK {
		t.Fatalf("operator unsuspends: %d %s", code, body)
	}
	for _, action := range []string{"suspend", "unsuspend"} {
		if code, out := a.do("POST", "/v1/subaccounts/"+s1+"/"+action, parent, nil); code != http.StatusOK {
			t.Errorf("%s after the operator's lifting: %d %v", action, code, out)
		}
	}

	// Key hints, never keys.
	code, body := a.raw("GET", "/v1/subaccounts/"+s1+"/keys", "", "X-API-Key", parent)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/subaccounts/{id}/keys: %d %s", code, body)
	}
	if strings.Contains(body, s1Key) || strings.Contains(body, s1Alias) {
		t.Errorf("the subaccount's keys are shown: %s", body)
	}
	var keys struct{ Keys []map[string]any }
	if err := json.NewDecoder(bytes.NewReader([]byte(body))).Decode(&keys); err != nil {
		t.Fatal(err)
	}
	var hints []string
	for _, k := range keys.Keys {
		hints = append(hints, k["type"].(string)+" "+k["hint"].(string))
		for _, f := range []string{"id", "name", "status", "created_at", "last_used_at"} {
			if _, ok := k[f]; !ok {
				t.Errorf("a subaccount key without %s: %v", f, k)
			}
		}
	}
	if want := []string{"primary " + s1Key[16:], "alias " + s1Alias[16:]}; !slices.Equal(hints, want) {
		t.Errorf("subaccount keys %v, want %v", hints, want)
	}

	// Another account's subaccount, the parent itself, or an unknown id: 404.
	for _, c := range []struct{ key, id string }{{stranger, s1}, {parent, theirs}, {parent, "acc_0000000000000000"}, {s1Key, s1}} {
		for _, call := range []struct{ method, suffix string }{{"POST", "/suspend"}, {"POST", "/unsuspend"}, {"GET", "/keys"}} {
			code, out := a.do(call.method, "/v1/subaccounts/"+c.id+call.suffix, c.key, nil)
			if code != http.StatusNotFound || errorCode(out) != "NOT_FOUND" {
				t.Errorf("%s /v1/subaccounts/%s%s by another account: %d %v, want 404", call.method, c.id, call.suffix, code, out)
			}
		}
	}
	if code, c := a.validateKey(s1Key); code != http.StatusOK {
		t.Errorf("refused requests changed the subaccount: validate %d %s", code, c)
	}
}
