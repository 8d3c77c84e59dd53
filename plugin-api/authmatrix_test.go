package pluginapi

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// relCred is one way of presenting (or not) a credential.
type relCred struct {
	name    string
	headers func(a, b *relAccount) []string
}

func relKeyHeader(key func(a, b *relAccount) string) func(a, b *relAccount) []string {
	return func(a, b *relAccount) []string { return []string{"X-API-Key", key(a, b)} }
}

// relCreds are the columns of the matrix. Those that must be refused
// everywhere come first; the last three may succeed somewhere.
var relCreds = []relCred{
	{"no key", func(a, b *relAccount) []string { return nil }},
	{"malformed key", relKeyHeader(func(a, b *relAccount) string { return "not-a-key!" })},
	{"unknown key", relKeyHeader(func(a, b *relAccount) string { return "Unknown0Key000000000" })},
	{"revoked key", relKeyHeader(func(a, b *relAccount) string { return a.revoked })},
	{"expired alias", relKeyHeader(func(a, b *relAccount) string { return a.expired })},
	{"inactive alias", relKeyHeader(func(a, b *relAccount) string { return a.inactive })},
	{"alias", relKeyHeader(func(a, b *relAccount) string { return a.alias })},
	{"alias as bearer", func(a, b *relAccount) []string { return []string{"Authorization", "Bearer " + a.alias} }},
	{"wrong admin token", func(a, b *relAccount) []string {
		return []string{"Authorization", "Bearer " + strings.Repeat("w", len(relToken))}
	}},
	{"admin token", func(a, b *relAccount) []string { return []string{"Authorization", "Bearer " + relToken} }},
	{"other account's primary", relKeyHeader(func(a, b *relAccount) string { return b.primary })},
	{"primary", relKeyHeader(func(a, b *relAccount) string { return a.primary })},
}

// relExpect is the status and code a route must answer a credential with;
// code "" for a success.
type relExpect struct {
	status int
	code   string
}

// relExpected is the contract: owner routes take only the account's current
// primary key (an alias is 403, every other failure 401, another account's
// resource 404), admin routes only the token, validate and usage answer per
// key state.
func relExpected(r relRoute, cred string) relExpect {
	okay := relExpect{status: r.ok}
	switch r.who {
	case relPublic:
		return okay
	case relAdmin:
		if cred == "admin token" {
			return okay
		}
		return relExpect{http.StatusUnauthorized, codeUnauthorized}
	case relOwner:
		switch cred {
		case "primary":
			return okay
		case "other account's primary":
			if r.namesResource() {
				return relExpect{http.StatusNotFound, codeNotFound}
			}
			return okay
		case "alias", "alias as bearer":
			return relExpect{http.StatusForbidden, codePrimaryKeyRequired}
		}
		return relExpect{http.StatusUnauthorized, codeUnauthorized}
	}
	// Validate and usage, which read the key the same way (presentedKey).
	switch cred {
	case "no key":
		return relExpect{http.StatusBadRequest, codeInvalidRequest}
	case "malformed key":
		return relExpect{http.StatusUnauthorized, codeMalformed}
	case "unknown key":
		return relExpect{http.StatusUnauthorized, codeNoKey}
	case "revoked key":
		return relExpect{http.StatusUnauthorized, codeRevoked}
	case "expired alias":
		return relExpect{http.StatusUnauthorized, codeExpired}
	case "inactive alias":
		return relExpect{http.StatusUnauthorized, codeInactive}
	case "wrong admin token", "admin token":
		return relExpect{http.StatusUnauthorized, codeMalformed}
	}
	return okay
}

var relLastUsed = regexp.MustCompile(`last_used_at="[^"]*" `)

// relWithoutActivity drops what a validation may legitimately record (its
// counters, the sites seen, the key's last use) from a snapshot.
func relWithoutActivity(s map[string][]string) map[string][]string {
	out := map[string][]string{}
	for t, rows := range s {
		if t == "key_usage_daily" || t == "key_sites" {
			continue
		}
		for _, r := range rows {
			out[t] = append(out[t], relLastUsed.ReplaceAllString(r, ""))
		}
	}
	return out
}

// TestAuthMatrix sends every route of the router a request that would
// succeed, once per credential, on a fresh database holding two accounts,
// and checks the exact status and code of each answer. A refused request
// changes nothing in the database; a request that succeeds changes nothing
// of the other account.
func TestAuthMatrix(t *testing.T) {
	checkRelRouteTable(t, newRelEnv(t, relToken))
	tpl := newRelTemplate(t)
	a, b := tpl.a, tpl.b
	for _, r := range relRouteTable {
		t.Run(r.route, func(t *testing.T) {
			e := tpl.copy(t, relToken)
			after := e.snapshot()
			for _, cred := range relCreds {
				want := relExpected(r, cred.name)
				req := relRequest{method: strings.SplitN(r.route, " ", 2)[0], target: r.target(a), headers: cred.headers(a, b)}
				if r.body != "" {
					req.contentType, req.body = "application/json", []byte(r.body)
				}
				before := after
				got := e.send(req)
				after = e.snapshot()

				if got.status != want.status || (want.code != "" && got.code() != want.code) {
					t.Errorf("%s with %s: got %s, want %d %s", r.route, cred.name, got, want.status, want.code)
				}
				switch {
				case got.status >= 400 && r.who == relPlugin:
					if d := relDiff(relWithoutActivity(before), relWithoutActivity(after), nil); d != "" {
						t.Errorf("%s with %s answered %d and changed the database:\n%s", r.route, cred.name, got.status, d)
					}
				case got.status >= 400:
					if d := relDiff(before, after, nil); d != "" {
						t.Errorf("%s with %s answered %d and changed the database:\n%s", r.route, cred.name, got.status, d)
					}
				case cred.name == "other account's primary":
					if d := relDiff(before, after, a.owns); d != "" {
						t.Errorf("%s with the other account's key changed this account's data:\n%s", r.route, d)
					}
					if a.owns(got.raw) {
						t.Errorf("%s with the other account's key shows this account's data: %s", r.route, got)
					}
				default:
					if d := relDiff(before, after, b.owns); d != "" {
						t.Errorf("%s with %s changed the other account's data:\n%s", r.route, cred.name, d)
					}
					// The operator's list of accounts shows every account.
					if b.owns(got.raw) && r.route != "GET /admin/v1/accounts" {
						t.Errorf("%s with %s shows the other account's data: %s", r.route, cred.name, got)
					}
				}
			}
		})
	}
}

// TestAdminAPIOffWithoutToken checks that without a configured token every
// admin route answers 404, whatever is presented, and changes nothing.
func TestAdminAPIOffWithoutToken(t *testing.T) {
	e := newRelEnv(t, "")
	a := e.relAccountFixture("Acme")
	b := e.relAccountFixture("Other")
	before := e.snapshot()
	for _, r := range relRouteTable {
		if r.who != relAdmin {
			continue
		}
		for _, cred := range relCreds {
			req := relRequest{method: strings.SplitN(r.route, " ", 2)[0], target: r.target(a), headers: cred.headers(a, b)}
			if r.body != "" {
				req.contentType, req.body = "application/json", []byte(r.body)
			}
			if got := e.send(req); got.status != http.StatusNotFound || got.code() != codeNotFound {
				t.Errorf("%s with %s and no admin token configured: got %s, want 404 NOT_FOUND", r.route, cred.name, got)
			}
		}
	}
	// Another method on an admin path is 404 too, not 405.
	if got := e.send(relRequest{method: "DELETE", target: "/admin/v1/plans", headers: []string{"Authorization", "Bearer " + relToken}}); got.status != http.StatusNotFound {
		t.Errorf("DELETE /admin/v1/plans without an admin API: got %s, want 404", got)
	}
	if d := relDiff(before, e.snapshot(), nil); d != "" {
		t.Errorf("refused admin requests changed the database:\n%s", d)
	}
}
