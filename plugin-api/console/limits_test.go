package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"keyd/store"
)

// charge spends units with key through POST /v1/usage, as a plugin would,
// and returns the status and the answer's code.
func (e *env) charge(key string, units int) (int, string) {
	e.tb.Helper()
	body, _ := json.Marshal(map[string]any{"units": units})
	req := httptest.NewRequest(http.MethodPost, "/v1/usage", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", key)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	var out struct {
		Code  string `json:"code"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	if out.Code == "" {
		out.Code = out.Error.Code
	}
	return w.Code, out.Code
}

// aliasNamed is the account's alias of that name.
func (e *env) aliasNamed(accountID, name string) store.Key {
	e.tb.Helper()
	for _, k := range e.aliases(accountID) {
		if k.Name == name {
			return k
		}
	}
	e.tb.Fatalf("no alias %q", name)
	return store.Key{}
}

func TestAliasLimitsLikeTheAPI(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	p := b.post("/console/aliases", url.Values{"name": {"Client"}, "lifetime": {"permanent"}, "scopes": {"*"},
		"spend_limit": {"5"}, "spend_period": {"day"}, "max_sites": {"3"}, "release_after": {"30d"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", p.status, p.body)
	}
	keys := b.follow(p)
	secret := shownSecret(t, keys)
	mustContain(t, keys, "0 of 5 units today", "5 left · resets 2025-03-15<", "Up to 3 sites", "slot freed after 30d unseen")
	e.consoleAudit(e.acc.Account.ID, store.EventAliasCreated)

	// The same effect as POST /v1/aliases with spend_limit and max_sites:
	// a charge over the limit is refused and charges nothing; a 4th site
	// is refused.
	if status, code := e.charge(secret, 3); status != http.StatusOK {
		t.Fatalf("charge 3 of 5: %d %s", status, code)
	}
	if status, code := e.charge(secret, 3); status != http.StatusPaymentRequired || code != "KEY_SPEND_LIMIT_REACHED" {
		t.Fatalf("charge over the limit: %d %s", status, code)
	}
	for _, site := range []string{"https://one.example/", "https://two.example/", "https://three.example/"} {
		if got := e.validate(secret, site); got != "VALID" {
			t.Fatalf("validate from %s: %s", site, got)
		}
	}
	if got := e.validate(secret, "https://four.example/"); got != "SITE_LIMIT_REACHED" {
		t.Fatalf("validate from a 4th site: %s", got)
	}
	mustContain(t, b.get("/console/keys"), "3 of 5 units today", "2 left")

	// The edit form shows the limits and changes them as PATCH would;
	// empty fields remove them.
	alias := e.aliasNamed(e.acc.Account.ID, "Client")
	edit := b.get("/console/aliases/" + alias.ID + "/edit")
	mustContain(t, edit, `name="spend_limit" value="5"`, `<option value="day" selected>`, `name="max_sites" value="3"`, `name="release_after" value="30d"`)
	p = b.post("/console/aliases/"+alias.ID, url.Values{"name": {"Client"}, "lifetime": {"keep"}, "scopes": {"*"},
		"spend_limit": {"10"}, "spend_period": {"day"}, "max_sites": {""}, "release_after": {""}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", p.status, p.body)
	}
	mustContain(t, b.follow(p), "3 of 10 units today")
	e.consoleAudit(e.acc.Account.ID, store.EventAliasUpdated)
	if got := e.validate(secret, "https://four.example/"); got != "VALID" {
		t.Fatalf("validate from a 4th site without max_sites: %s", got)
	}
	if status, code := e.charge(secret, 8); status != http.StatusPaymentRequired || code != "KEY_SPEND_LIMIT_REACHED" {
		t.Fatalf("charge over the new limit: %d %s", status, code)
	}
	p = b.post("/console/aliases/"+alias.ID, url.Values{"name": {"Client"}, "lifetime": {"keep"}, "scopes": {"*"}, "spend_period": {"month"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("clear the limits: %d\n%s", p.status, p.body)
	}
	mustContain(t, b.follow(p), "No limits")
	if status, code := e.charge(secret, 8); status != http.StatusOK {
		t.Fatalf("charge without a limit: %d %s", status, code)
	}
}

func TestPrimaryKeyLimitsFromTheConsole(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	mustContain(t, b.get("/console/keys"), "No limits", `action="/console/keys/`+e.acc.Key.ID+`/limits#primary-limits"`)
	p := b.post("/console/keys/"+e.acc.Key.ID+"/limits", url.Values{"spend_limit": {"2"}, "spend_period": {"total"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("set: %d\n%s", p.status, p.body)
	}
	mustContain(t, b.follow(p), "Limits of the primary key ••••"+e.acc.Key.Hint+" saved.", "0 of 2 units in total", "2 left")
	e.consoleAudit(e.acc.Account.ID, store.EventKeyUpdated)
	if status, code := e.charge(e.acc.Secret, 3); status != http.StatusPaymentRequired || code != "KEY_SPEND_LIMIT_REACHED" {
		t.Fatalf("primary over its limit: %d %s", status, code)
	}
	bad := b.post("/console/keys/"+e.acc.Key.ID+"/limits", url.Values{"spend_limit": {"2"}, "spend_period": {"week"}})
	if bad.status != http.StatusBadRequest {
		t.Fatalf("bad period: %d", bad.status)
	}
	mustContain(t, bad, "Spend limit: period must be day, month or total", `id="primary-limits" open`, `<option value="day">`)
	mustLack(t, bad, "Spend_limit") // said next to the field, not again above the form in the API's field name
}

func TestLimitsBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	alias, err := e.db.CreateAlias(context.Background(), store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Kept"})
	if err != nil {
		t.Fatal(err)
	}
	before := e.lastAudit(e.acc.Account.ID).ID
	for _, tc := range []struct {
		field, value, msg string
	}{
		{"spend_limit", "0", "Spend limit: limit must be a whole number from 1 to"},
		{"spend_limit", "lots", "Spend limit: limit must be a whole number from 1 to"},
		{"max_sites", "0", "Sites at most must be a whole number from 1 to 100000"},
		{"max_sites", "2.5", "Sites at most must be a whole number from 1 to 100000"},
		{"release_after", "30", "Free a site's slot after: " + store.DurationSyntax[:20]},
		{"release_after", "5m", "Free a site's slot after: must be between 1h and 3650d"},
	} {
		form := url.Values{"name": {"New"}, "lifetime": {"permanent"}, "scopes": {"*"}, "spend_period": {"month"}, tc.field: {tc.value}}
		p := b.post("/console/aliases", form)
		if p.status != http.StatusBadRequest {
			t.Fatalf("create with %s=%q: %d\n%s", tc.field, tc.value, p.status, p.body)
		}
		mustContain(t, p, tc.msg, `name="`+tc.field+`" value="`+tc.value+`"`, `aria-invalid="true"`)
		mustLack(t, p, `class="alert"`)
		form.Set("name", "Kept")
		form.Set("lifetime", "keep")
		if p := b.post("/console/aliases/"+alias.Key.ID, form); p.status != http.StatusBadRequest {
			t.Fatalf("edit with %s=%q: %d\n%s", tc.field, tc.value, p.status, p.body)
		} else {
			mustContain(t, p, tc.msg)
		}
	}
	if got := e.lastAudit(e.acc.Account.ID).ID; got != before || len(e.aliases(e.acc.Account.ID)) != 1 {
		t.Fatal("a refused form changed something")
	}
	if k := e.aliasNamed(e.acc.Account.ID, "Kept"); k.SpendLimit != nil || k.MaxSites != nil || k.ReleaseAfter != nil {
		t.Fatalf("the alias got limits: %+v", k)
	}
}

func TestReleaseASiteFromTheConsole(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	three := 3
	alias, err := e.db.CreateAlias(context.Background(), store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Licensed", MaxSites: &three})
	if err != nil {
		t.Fatal(err)
	}
	// A site a plugin sent with markup in it: never shown as markup.
	for _, site := range []string{"https://one.example/", "https://two.example/", "https://x.example/<b>hi</b>"} {
		if got := e.validate(alias.Secret, site); got != "VALID" {
			t.Fatalf("validate from %s: %s", site, got)
		}
	}
	if got := e.validate(alias.Secret, "https://four.example/"); got != "SITE_LIMIT_REACHED" {
		t.Fatalf("a 4th site: %s", got)
	}
	if err := e.db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	page := b.get("/console/usage?key=" + alias.Key.ID)
	mustContain(t, page, "3 of 3 site slots taken", "Holds a slot", `name="host" value="one.example"`,
		`action="/console/keys/`+alias.Key.ID+`/sites/release"`, `name="host" value="x.example"`)
	mustLack(t, page, "<b>hi")

	p := b.post("/console/keys/"+alias.Key.ID+"/sites/release", url.Values{"host": {"one.example"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("release: %d\n%s", p.status, p.body)
	}
	after := b.follow(p)
	mustContain(t, after, "The slot of one.example is free", "2 of 3 site slots taken")
	e.consoleAudit(e.acc.Account.ID, store.EventSiteReleased)
	if got := e.validate(alias.Secret, "https://four.example/"); got != "VALID" {
		t.Fatalf("a 4th site after a release: %s", got)
	}
	// A host with markup holds no slot: refused, and not echoed as markup.
	if p := b.post("/console/keys/"+alias.Key.ID+"/sites/release", url.Values{"host": {"<b>x</b>.example"}}); p.status != http.StatusNotFound {
		t.Fatalf("release a host with markup: %d", p.status)
	} else {
		mustLack(t, p, "<b>x")
	}
	// Again: it holds no slot now. Without the form token: refused.
	if p := b.post("/console/keys/"+alias.Key.ID+"/sites/release", url.Values{"host": {"one.example"}}); p.status != http.StatusNotFound {
		t.Fatalf("release again: %d", p.status)
	}
	if p := b.do(http.MethodPost, "/console/keys/"+alias.Key.ID+"/sites/release", url.Values{"host": {"two.example"}}, "same-origin"); p.status != http.StatusForbidden {
		t.Fatalf("release without the form token: %d", p.status)
	}
	// Another account's owner cannot release it.
	other := e.account("Other")
	ob := e.browser()
	ob.signIn(other.Secret)
	if p := ob.post("/console/keys/"+alias.Key.ID+"/sites/release", url.Values{"host": {"two.example"}}); p.status != http.StatusNotFound {
		t.Fatalf("another account: %d", p.status)
	}
	if got := e.validate(alias.Secret, "https://five.example/"); got != "SITE_LIMIT_REACHED" {
		t.Fatalf("slots after refused releases: %s", got)
	}
}
