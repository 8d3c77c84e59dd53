package pluginapi

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// aliasPage is one GET /v1/aliases answer: the ids and next_before.
func (a *ownerAPI) aliasPage(key, query string) (ids []string, next any) {
	a.t.Helper()
	code, out := a.do("GET", "/v1/aliases"+query, key, nil)
	if code != http.StatusOK {
		a.t.Fatalf("GET /v1/aliases%s: %d %v", query, code, out)
	}
	for _, k := range out["aliases"].([]any) {
		k := k.(map[string]any)
		if k["type"] != "alias" {
			a.t.Errorf("GET /v1/aliases%s lists a %v key", query, k["type"])
		}
		ids = append(ids, k["id"].(string))
	}
	return ids, out["next_before"]
}

// TestListAndGetAliases checks GET /v1/aliases (newest first, filtered by
// the status GET /v1/keys shows, paged with limit and before) and GET
// /v1/aliases/{id} (404 for a primary key or another account's alias).
func TestListAndGetAliases(t *testing.T) {
	a := newOwnerAPI(t)
	_, primary := a.accountWith("mega", 100)
	_, otherKey := a.accountWith("pro", 100)
	otherAlias, _ := a.alias(otherKey, map[string]any{"name": "theirs"})

	var created []string // oldest first
	mk := func(name string, body map[string]any) string {
		body["name"] = name
		id, _ := a.alias(primary, body)
		created = append(created, id)
		a.now = a.now.Add(time.Second)
		return id
	}
	active := mk("active", map[string]any{})
	inactive := mk("inactive", map[string]any{})
	expired := mk("expired", map[string]any{"ttl": "1h"})
	deleted := mk("deleted", map[string]any{})
	inactiveLater := mk("inactive-expired", map[string]any{"ttl": "1h"})
	mk("active-2", map[string]any{"ttl": "30d"})
	for _, call := range []struct{ method, path string }{
		{"POST", "/v1/aliases/" + inactive + "/deactivate"},
		{"DELETE", "/v1/aliases/" + deleted},
		{"POST", "/v1/aliases/" + inactiveLater + "/deactivate"},
	} {
		if code, out := a.do(call.method, call.path, primary, nil); code >= 300 {
			t.Fatalf("%s %s: %d %v", call.method, call.path, code, out)
		}
	}
	a.now = a.now.Add(2 * time.Hour) // the two 1h aliases are past expiry; no job has run

	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)
	if ids, next := a.aliasPage(primary, ""); !slices.Equal(ids, newestFirst) || next != nil {
		t.Errorf("GET /v1/aliases = %v next %v, want %v and null", ids, next, newestFirst)
	}

	// Each alias is listed under exactly the status GET /v1/keys gives it.
	keys := a.keysByID(primary)
	if got := keys[expired]["status"]; got != "expired" {
		t.Errorf("a temporary alias past its expiry shows %v in GET /v1/keys", got)
	}
	if got := keys[active]["status"]; got != "active" {
		t.Errorf("an active alias shows %v", got)
	}
	for _, status := range []string{"active", "inactive", "expired", "revoked"} {
		var want []string
		for _, id := range newestFirst {
			if keys[id]["status"] == status {
				want = append(want, id)
			}
		}
		if ids, _ := a.aliasPage(primary, "?status="+status); !slices.Equal(ids, want) {
			t.Errorf("GET /v1/aliases?status=%s = %v, want %v", status, ids, want)
		}
	}

	// Pages of two, then of one within a status, make up the whole list.
	for _, q := range []struct{ filter, limit string }{{"", "2"}, {"", "4"}, {"&status=active", "1"}} {
		var all []string
		query := "?limit=" + q.limit + q.filter
		for page := 0; ; page++ {
			ids, next := a.aliasPage(primary, query)
			all = append(all, ids...)
			if next == nil {
				break
			}
			if page > 10 {
				t.Fatal("paging does not end")
			}
			query = "?limit=" + q.limit + q.filter + "&before=" + next.(string)
		}
		want := newestFirst
		if q.filter != "" {
			want = nil
			for _, id := range newestFirst {
				if keys[id]["status"] == "active" {
					want = append(want, id)
				}
			}
		}
		if !slices.Equal(all, want) {
			t.Errorf("paging with limit %s%s gives %v, want %v", q.limit, q.filter, all, want)
		}
	}

	for _, bad := range []string{"?status=Active", "?status=deleted", "?limit=0", "?limit=501", "?limit=x", "?before=" + otherAlias, "?before=key_zz"} {
		if code, out := a.do("GET", "/v1/aliases"+bad, primary, nil); code != http.StatusBadRequest || errorCode(out) != "INVALID_REQUEST" {
			t.Errorf("GET /v1/aliases%s: %d %v, want 400 INVALID_REQUEST", bad, code, out)
		}
	}

	// One alias, as the list shows it.
	for _, id := range created {
		code, out := a.do("GET", "/v1/aliases/"+id, primary, nil)
		if code != http.StatusOK || out["id"] != id || out["status"] != keys[id]["status"] || out["hint"] != keys[id]["hint"] {
			t.Errorf("GET /v1/aliases/%s: %d %v, GET /v1/keys shows %v", id, code, out, keys[id])
		}
		if _, ok := out["key"]; ok {
			t.Errorf("GET /v1/aliases/%s shows a key: %v", id, out)
		}
	}
	primaryID := ""
	for id, k := range keys {
		if k["type"] == "primary" {
			primaryID = id
		}
	}
	for _, id := range []string{primaryID, otherAlias, "key_0000000000000000", "nonsense"} {
		if code, out := a.do("GET", "/v1/aliases/"+id, primary, nil); code != http.StatusNotFound || errorCode(out) != "NOT_FOUND" {
			t.Errorf("GET /v1/aliases/%s: %d %v, want 404 NOT_FOUND", id, code, out)
		}
	}
	// The other account sees only its own alias.
	if ids, _ := a.aliasPage(otherKey, ""); !slices.Equal(ids, []string{otherAlias}) {
		t.Errorf("the other account lists %v", ids)
	}
}
