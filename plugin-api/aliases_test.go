package pluginapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keyd/store"
	"keyd/store/storetest"
)

// ownerAPI is the real router over a real store (a new database of the
// engine the tests run on), driven as an account owner would.
type ownerAPI struct {
	t       *testing.T
	handler http.Handler
	db      *store.DB
	dsn     string
	now     time.Time
	scopes  store.Catalogue
}

func newOwnerAPI(t *testing.T, scopes ...string) *ownerAPI {
	t.Helper()
	cat, err := store.NewCatalogue(scopes)
	if err != nil {
		t.Fatal(err)
	}
	a := &ownerAPI{t: t, dsn: storetest.DSN(t), scopes: cat,
		now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	a.open()
	return a
}

func (a *ownerAPI) clock() time.Time { return a.now }

func (a *ownerAPI) open() {
	db, err := store.Open(context.Background(), a.dsn, StoreOptions(a.dsn, store.WithClock(a.clock), store.WithScopes(a.scopes))...)
	if err != nil {
		a.t.Fatal(err)
	}
	h, err := New(db, Config{Now: a.clock, Scopes: a.scopes, AdminToken: strings.Repeat("t", 40)})
	if err != nil {
		a.t.Fatal(err)
	}
	a.db, a.handler = db, h
	a.t.Cleanup(func() { db.Close() })
}

// do sends a request with an optional JSON body and key, and decodes the answer.
func (a *ownerAPI) do(method, path, key string, body any) (int, map[string]any) {
	a.t.Helper()
	var r *http.Request
	if body != nil {
		b, _ := json.Marshal(body)
		r = httptest.NewRequest(method, path, bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if key != "" {
		r.Header.Set("X-API-Key", key)
	}
	w := httptest.NewRecorder()
	a.handler.ServeHTTP(w, r)
	var out map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			a.t.Fatalf("%s %s: answer is not JSON: %q", method, path, w.Body.String())
		}
	}
	if w.Code >= 500 {
		a.t.Fatalf("%s %s: %d %v", method, path, w.Code, out)
	}
	return w.Code, out
}

func (a *ownerAPI) account(plan string) (id, key string) {
	a.t.Helper()
	c, err := a.db.CreateAccount(context.Background(), store.SystemActor, store.NewAccount{Name: "Acme", Email: "o@acme.test", Plan: plan, Credits: 10})
	if err != nil {
		a.t.Fatal(err)
	}
	return c.Account.ID, c.Secret
}

func (a *ownerAPI) alias(key string, body map[string]any) (id, secret string) {
	a.t.Helper()
	code, out := a.do("POST", "/v1/aliases", key, body)
	if code != http.StatusCreated {
		a.t.Fatalf("create alias: %d %v", code, out)
	}
	return out["alias"].(map[string]any)["id"].(string), out["key"].(string)
}

func (a *ownerAPI) validate(form string) (int, map[string]any) {
	a.t.Helper()
	r := httptest.NewRequest("POST", "/v1/validate", strings.NewReader(form))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	a.handler.ServeHTTP(w, r)
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func errorCode(out map[string]any) string {
	if e, ok := out["error"].(map[string]any); ok {
		return e["code"].(string)
	}
	code, _ := out["code"].(string)
	return code
}

func TestParallelAliasCreatesRespectThePlanLimit(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.account("pro")
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[string]int{}
	)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, out := a.do("POST", "/v1/aliases", key, map[string]any{"name": fmt.Sprintf("client %d", i)})
			mu.Lock()
			codes[fmt.Sprintf("%d %s", code, errorCode(out))]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if codes["201 "] != 5 || codes["403 ALIAS_LIMIT_REACHED"] != 15 || len(codes) != 2 {
		t.Fatalf("answers %v; want 5 created and 15 ALIAS_LIMIT_REACHED", codes)
	}
	_, out := a.do("GET", "/v1/account", key, nil)
	if used := out["aliases"].(map[string]any)["used"]; used != 5.0 {
		t.Fatalf("aliases used %v, want 5", used)
	}
}

func TestAliasCannotUseOwnerEndpoints(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.account("pro")
	aliasID, aliasKey := a.alias(key, map[string]any{"name": "client"})
	routes := []struct{ method, path string }{
		{"GET", "/v1/account"}, {"POST", "/v1/account/reset-key"}, {"GET", "/v1/keys"},
		{"PATCH", "/v1/keys/" + aliasID}, {"GET", "/v1/keys/" + aliasID + "/sites"},
		{"POST", "/v1/aliases"}, {"PATCH", "/v1/aliases/" + aliasID}, {"DELETE", "/v1/aliases/" + aliasID},
		{"POST", "/v1/aliases/" + aliasID + "/deactivate"}, {"POST", "/v1/aliases/" + aliasID + "/reactivate"},
		{"GET", "/v1/usage"}, {"GET", "/v1/audit"},
	}
	for _, r := range routes {
		code, out := a.do(r.method, r.path, aliasKey, map[string]any{"name": "x"})
		if code != http.StatusForbidden || errorCode(out) != "PRIMARY_KEY_REQUIRED" {
			t.Errorf("%s %s with an alias: %d %v, want 403 PRIMARY_KEY_REQUIRED", r.method, r.path, code, out)
		}
	}
	// And nothing changed: the alias is still active and alone.
	if code, out := a.validate("key=" + aliasKey); code != 200 {
		t.Fatalf("alias after the attempts: %d %v", code, out)
	}
	for _, r := range routes {
		code, out := a.do(r.method, r.path, "", nil)
		if code != http.StatusUnauthorized || errorCode(out) != "UNAUTHORIZED" {
			t.Errorf("%s %s without a key: %d %v", r.method, r.path, code, out)
		}
	}
}

func TestOtherAccountsAliasesAnswerNotFound(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.account("pro")
	_, otherKey := a.account("pro")
	aliasID, aliasKey := a.alias(key, map[string]any{"name": "client"})
	for _, r := range []struct{ method, path string }{
		{"PATCH", "/v1/aliases/" + aliasID}, {"DELETE", "/v1/aliases/" + aliasID},
		{"POST", "/v1/aliases/" + aliasID + "/deactivate"}, {"POST", "/v1/aliases/" + aliasID + "/reactivate"},
		{"GET", "/v1/keys/" + aliasID + "/sites"}, {"PATCH", "/v1/keys/" + aliasID},
		{"GET", "/v1/usage?key_id=" + aliasID},
	} {
		code, out := a.do(r.method, r.path, otherKey, map[string]any{"name": "stolen"})
		if code != http.StatusNotFound || errorCode(out) != "NOT_FOUND" {
			t.Errorf("%s %s from another account: %d %v, want 404", r.method, r.path, code, out)
		}
	}
	if code, out := a.validate("key=" + aliasKey); code != 200 || out["key"].(map[string]any)["name"] != "client" {
		t.Fatalf("alias after another account's attempts: %d %v", code, out)
	}
}

func TestAliasLifecycleOverHTTP(t *testing.T) {
	a := newOwnerAPI(t, "optimize", "convert", "stats")
	_, key := a.account("pro")

	// Bad input: fields named, nothing stored.
	for _, body := range []map[string]any{
		{"name": ""}, {"name": "slash/name"}, {"name": strings.Repeat("x", 51)},
		{"name": "ok", "ttl": "soon"}, {"name": "ok", "ttl": "7d", "expires_at": "2030-01-01T00:00:00Z"},
		{"name": "ok", "expires_at": "2020-01-01T00:00:00Z"}, {"name": "ok", "scopes": []string{"resize"}},
		{"name": "ok", "allowed_sites": []string{"http://x.com/"}}, {"name": "ok", "colour": "red"},
	} {
		code, out := a.do("POST", "/v1/aliases", key, body)
		if code != http.StatusBadRequest || errorCode(out) != "INVALID_REQUEST" {
			t.Errorf("create %v: %d %v, want 400 INVALID_REQUEST", body, code, out)
		}
	}
	_, out := a.do("GET", "/v1/keys", key, nil)
	if n := len(out["keys"].([]any)); n != 1 {
		t.Fatalf("%d keys after refused creates, want only the primary", n)
	}

	id, secret := a.alias(key, map[string]any{"name": "Client site", "ttl": "7d",
		"scopes": []string{"optimize"}, "allowed_sites": []string{"*.client.example"}})
	cases := []struct {
		form, code string
		status     int
	}{
		{"key=" + secret + "&site=https://www.client.example/", "VALID", 200},
		{"key=" + secret + "&site=https://www.client.example/&scope=optimize", "VALID", 200},
		{"key=" + secret + "&site=https://www.client.example/&scope=convert", "SCOPE_DENIED", 403},
		{"key=" + secret + "&site=https://www.client.example/&scope=resize", "INVALID_REQUEST", 400},
		{"key=" + secret + "&site=https://elsewhere.example/", "SITE_NOT_ALLOWED", 403},
		{"key=" + secret, "SITE_NOT_ALLOWED", 403},
		{"key=" + secret + "&site=http://localhost:8080/", "VALID", 200},
	}
	for _, c := range cases {
		if code, out := a.validate(c.form); code != c.status || out["code"] != c.code {
			t.Errorf("validate %s: %d %v, want %d %s", c.form, code, out, c.status, c.code)
		}
	}

	// Expiry to the second with no job run.
	a.now = a.now.Add(7*24*time.Hour - time.Second)
	if code, out := a.validate("key=" + secret + "&site=shop.client.example"); code != 200 {
		t.Fatalf("a second before expiry: %d %v", code, out)
	}
	a.now = a.now.Add(time.Second)
	code, out := a.validate("key=" + secret + "&site=shop.client.example")
	if code != 401 || out["code"] != "EXPIRED" || out["expires_at"] == nil {
		t.Fatalf("at expiry: %d %v, want 401 EXPIRED with expires_at", code, out)
	}
	// PATCH with a new ttl revives it.
	if code, out := a.do("PATCH", "/v1/aliases/"+id, key, map[string]any{"ttl": "1d"}); code != 200 || out["status"] != "active" {
		t.Fatalf("revive: %d %v", code, out)
	}
	if code, _ := a.validate("key=" + secret + "&site=shop.client.example"); code != 200 {
		t.Fatalf("after revival: %d", code)
	}
	// Deactivate, reactivate, delete: each visible to the very next validate.
	steps := []struct{ method, path, want string }{
		{"POST", "/v1/aliases/" + id + "/deactivate", "INACTIVE"},
		{"POST", "/v1/aliases/" + id + "/reactivate", "VALID"},
		{"DELETE", "/v1/aliases/" + id, "REVOKED"},
	}
	for _, s := range steps {
		if code, out := a.do(s.method, s.path, key, nil); code >= 300 {
			t.Fatalf("%s %s: %d %v", s.method, s.path, code, out)
		}
		if _, out := a.validate("key=" + secret + "&site=shop.client.example"); out["code"] != s.want {
			t.Fatalf("after %s %s: %v, want %s", s.method, s.path, out, s.want)
		}
	}
	if code, _ := a.do("POST", "/v1/aliases/"+id+"/reactivate", key, nil); code != 404 {
		t.Fatalf("reactivating a deleted alias: %d, want 404", code)
	}
	// The audit log tells the story, newest first, with the owner as actor.
	_, audit := a.do("GET", "/v1/audit?limit=3", key, nil)
	events := audit["events"].([]any)
	wantActions := []string{"alias.deleted", "alias.reactivated", "alias.deactivated"}
	for i, e := range events {
		ev := e.(map[string]any)
		if ev["action"] != wantActions[i] || ev["actor"].(map[string]any)["type"] != "primary" {
			t.Errorf("audit entry %d: %v, want %s by the primary key", i, ev, wantActions[i])
		}
	}
	if audit["next_before"] == nil {
		t.Error("a full page of audit entries should give next_before")
	}
	// Each entry carries the account's sequence, one less than the entry
	// before it, and its time to the millisecond.
	for i, e := range events {
		ev := e.(map[string]any)
		seq, ok := ev["sequence"].(float64)
		if !ok || i > 0 && seq != events[i-1].(map[string]any)["sequence"].(float64)-1 {
			t.Errorf("audit entry %d has sequence %v", i, ev["sequence"])
		}
		if at, _ := ev["created_at"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(at) {
			t.Errorf("audit entry %d has created_at %q, want RFC 3339 with milliseconds", i, at)
		}
	}
}

func TestLastUsedAndSitesAfterFlushAndRestart(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.account("pro")
	id, secret := a.alias(key, map[string]any{"name": "client"})
	_, out := a.do("GET", "/v1/keys", key, nil)
	if lu := out["keys"].([]any)[1].(map[string]any)["last_used_at"]; lu != nil {
		t.Fatalf("last_used_at before any use: %v", lu)
	}
	if code, _ := a.validate("key=" + secret + "&site=https://Client.example/blog/&plugin=shop&plugin_version=1.2&wp_version=6.1"); code != 200 {
		t.Fatal("validate failed")
	}
	if code, _ := a.validate("key=" + secret + "&scope=x&site=https://client.example/blog"); code != 200 {
		t.Fatal("second validate failed")
	}
	if err := a.db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A restart (the store closed and opened again) keeps it all.
	a.db.Close()
	a.open()
	_, out = a.do("GET", "/v1/keys", key, nil)
	if lu := out["keys"].([]any)[1].(map[string]any)["last_used_at"]; lu != a.now.Format(time.RFC3339) {
		t.Fatalf("last_used_at after flush and restart: %v, want %s", lu, a.now.Format(time.RFC3339))
	}
	_, out = a.do("GET", "/v1/keys/"+id+"/sites", key, nil)
	sites := out["sites"].([]any)
	if len(sites) != 1 {
		t.Fatalf("sites: %v, want one (the same site twice)", sites)
	}
	s := sites[0].(map[string]any)
	if s["site"] != "client.example/blog" || s["plugin"] != "shop" || s["plugin_version"] != "1.2" || s["wp_version"] != "6.1" {
		t.Fatalf("site record: %v", s)
	}
	day := a.now.Format(time.DateOnly)
	_, out = a.do("GET", "/v1/usage?from="+day+"&to="+day+"&key_id="+id, key, nil)
	usage := out["usage"].([]any)
	if len(usage) != 1 || usage[0].(map[string]any)["validations"] != 2.0 {
		t.Fatalf("usage: %v, want 2 validations today", out)
	}
	if code, _ := a.do("GET", "/v1/usage?from=yesterday", key, nil); code != 400 {
		t.Fatalf("bad from date: %d, want 400", code)
	}
}
