package console_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pluginapi "keyd/plugin-api"
	"keyd/store"
	"keyd/store/storetest"
)

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is the real router over a real store (a new database of the engine the
// tests run on), with
// one account ("Acme") whose owner uses the console.
type env struct {
	tb    testing.TB
	db    *store.DB
	h     http.Handler
	clock *fakeClock
	acc   store.Created
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	e := &env{tb: tb, clock: &fakeClock{t: t0}}
	dsn := storetest.DSN(tb)
	db, err := store.Open(context.Background(), dsn, storeOptions(dsn, store.WithClock(e.clock.Now))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	e.db = db
	if e.h, err = pluginapi.New(db, pluginapi.Config{Now: e.clock.Now, AllowPrivateWebhooks: true}); err != nil {
		tb.Fatal(err)
	}
	e.acc = e.account("Acme")
	return e
}

// account creates an account on the pro plan (5 aliases), as the operator.
func (e *env) account(name string) store.Created {
	e.tb.Helper()
	c, err := e.db.CreateAccount(context.Background(), store.OperatorActor(""), store.NewAccount{
		Name: name, Email: strings.ToLower(name) + "@example.com", Plan: "pro", Credits: 100})
	if err != nil {
		e.tb.Fatal(err)
	}
	return c
}

type page struct {
	status int
	header http.Header
	body   string
}

// browser is an owner's browser: it keeps the session cookie and the form
// token of the last page it saw, and says its requests are same-origin.
type browser struct {
	e      *env
	cookie string
	token  string
	addr   string
}

func (e *env) browser() *browser { return &browser{e: e, addr: "192.0.2.10:4000"} }

var formTokenRE = regexp.MustCompile(`name="form_token" value="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values, site string) page {
	b.e.tb.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	req.RemoteAddr = b.addr
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
	}
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "keyd_console", Value: b.cookie})
	}
	w := httptest.NewRecorder()
	b.e.h.ServeHTTP(w, req)
	for _, c := range w.Result().Cookies() {
		if c.Name == "keyd_console" {
			b.cookie = c.Value
			if c.MaxAge < 0 {
				b.cookie = ""
			}
		}
	}
	p := page{status: w.Code, header: w.Header(), body: w.Body.String()}
	if m := formTokenRE.FindStringSubmatch(p.body); m != nil {
		b.token = m[1]
	}
	return p
}

func (b *browser) get(path string) page { return b.do(http.MethodGet, path, nil, "") }

// post sends a form from a console page, with the form token.
func (b *browser) post(path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	form.Set("form_token", b.token)
	return b.do(http.MethodPost, path, form, "same-origin")
}

// follow GETs where a redirect points.
func (b *browser) follow(p page) page {
	b.e.tb.Helper()
	if p.status != http.StatusSeeOther {
		b.e.tb.Fatalf("answer %d, want a 303 redirect; body:\n%s", p.status, p.body)
	}
	return b.get(p.header.Get("Location"))
}

// signIn signs in with key and lands on the keys page.
func (b *browser) signIn(key string) page {
	b.e.tb.Helper()
	b.get("/console/sign-in")
	p := b.do(http.MethodPost, "/console/sign-in", url.Values{"key": {key}}, "same-origin")
	if p.status != http.StatusSeeOther || b.cookie == "" {
		b.e.tb.Fatalf("sign-in: %d, cookie %q\n%s", p.status, b.cookie, p.body)
	}
	return b.follow(p)
}

// validate asks POST /v1/validate about key for site, as a plugin would.
func (e *env) validate(key, site string) string {
	e.tb.Helper()
	body, _ := json.Marshal(map[string]string{"key": key, "site": site})
	req := httptest.NewRequest(http.MethodPost, "/v1/validate", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	var out struct {
		Valid bool   `json:"valid"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Code == "INVALID_REQUEST" {
		e.tb.Fatalf("validate: %v: %s", err, w.Body.String())
	}
	if out.Valid {
		return "VALID"
	}
	return out.Code
}

// lastAudit is the account's newest audit entry.
func (e *env) lastAudit(accountID string) store.AuditEntry {
	e.tb.Helper()
	entries, err := e.db.ListAudit(context.Background(), accountID, "", 1)
	if err != nil || len(entries) == 0 {
		e.tb.Fatalf("audit: %v, %d entries", err, len(entries))
	}
	return entries[0]
}

// consoleAudit checks that the newest event is action, by the account's
// primary key on the console channel.
func (e *env) consoleAudit(accountID, action string) store.AuditEntry {
	e.tb.Helper()
	a := e.lastAudit(accountID)
	if a.Action != action || a.Actor.Type != store.ActorPrimary || a.Actor.Channel == nil || *a.Actor.Channel != store.ChannelConsole {
		e.tb.Fatalf("last audit entry: %s by %s on %v; want %s by the primary key on the console", a.Action, a.Actor.Type, a.Actor.Channel, action)
	}
	return a
}

var secretRE = regexp.MustCompile(`id="shown-secret">([A-Za-z0-9]{20})<`)

// shownSecret is the key of a page's show-once panel.
func shownSecret(tb testing.TB, p page) string {
	tb.Helper()
	m := secretRE.FindStringSubmatch(p.body)
	if m == nil {
		tb.Fatalf("no show-once key on the page:\n%s", p.body)
	}
	return m[1]
}

func mustContain(tb testing.TB, p page, parts ...string) {
	tb.Helper()
	for _, s := range parts {
		if !strings.Contains(p.body, s) {
			tb.Fatalf("page (%d) lacks %q:\n%s", p.status, s, p.body)
		}
	}
}

func mustLack(tb testing.TB, p page, parts ...string) {
	tb.Helper()
	for _, s := range parts {
		if strings.Contains(p.body, s) {
			tb.Fatalf("page (%d) shows %q:\n%s", p.status, s, p.body)
		}
	}
}

func (e *env) aliases(accountID string) []store.Key {
	e.tb.Helper()
	keys, err := e.db.ListAliases(context.Background(), accountID, "", "", 500)
	if err != nil {
		e.tb.Fatal(err)
	}
	return keys
}

func TestConsoleHeadersOnEveryAnswer(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	check := func(name string, p page) {
		t.Helper()
		want := map[string]string{
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
			"Cache-Control":           "no-store",
		}
		for h, v := range want {
			if got := p.header.Get(h); got != v {
				t.Errorf("%s: %s = %q, want %q", name, h, got, v)
			}
		}
	}
	signIn := b.get("/console/sign-in")
	check("sign-in page", signIn)
	mustLack(t, signIn, "<script>", "style=", "<style", "onclick")
	check("redirect", b.get("/console/"))
	check("stylesheet", b.get("/console/static/console.css"))
	check("bad sign-in", b.do(http.MethodPost, "/console/sign-in", url.Values{"key": {"nope"}}, "same-origin"))
	check("keys page", b.signIn(e.acc.Secret))
	check("not found", b.get("/console/aliases/als_nope/edit"))
	for _, path := range []string{"/console/nothing", "/console/aliases/x/y/z"} {
		p := b.get(path)
		check("no route", p)
		if p.status != http.StatusNotFound || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s: %d %s", path, p.status, p.header.Get("Content-Type"))
		}
	}
	p := b.do(http.MethodDelete, "/console/keys", nil, "same-origin")
	check("no method", p)
	if p.status != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE /console/keys: %d", p.status)
	}

	// No inline script or style anywhere: the policy would block them.
	for _, path := range []string{"/console/keys", "/console/keys/reset"} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		mustLack(t, p, "<script>", "style=", "<style", "onclick")
	}

	root := httptest.NewRecorder()
	e.h.ServeHTTP(root, httptest.NewRequest(http.MethodGet, "/", nil))
	if root.Code != http.StatusFound || root.Header().Get("Location") != "/console/" {
		t.Fatalf("GET / = %d to %q, want a redirect to /console/", root.Code, root.Header().Get("Location"))
	}
}

func TestSignInAndOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser()

	// Not signed in: pages send to the sign-in page, actions are refused.
	if p := b.get("/console/keys"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/sign-in" {
		t.Fatalf("keys page without a session: %d to %q", p.status, p.header.Get("Location"))
	}
	if p := b.do(http.MethodPost, "/console/aliases", url.Values{"name": {"x"}, "lifetime": {"permanent"}}, "same-origin"); p.status != http.StatusUnauthorized {
		t.Fatalf("action without a session: %d, want 401", p.status)
	}

	// Wrong keys say why, and open nothing.
	alias, err := e.db.CreateAlias(context.Background(), store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "site"})
	if err != nil {
		t.Fatal(err)
	}
	for key, msg := range map[string]string{
		"short":                        "A key is 20 letters and digits",
		"AAAAAAAAAAAAAAAAAAAA":         "No account has this key",
		alias.Secret:                   "This is an alias",
		" " + e.acc.Secret[:19] + "0 ": "No account has this key",
	} {
		p := b.do(http.MethodPost, "/console/sign-in", url.Values{"key": {key}}, "same-origin")
		if p.status != http.StatusUnauthorized || b.cookie != "" {
			t.Fatalf("sign-in with %q: %d, cookie %q", key, p.status, b.cookie)
		}
		mustContain(t, p, msg)
		mustLack(t, p, key)
	}

	p := b.do(http.MethodPost, "/console/sign-in", url.Values{"key": {e.acc.Secret}}, "same-origin")
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.status)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		cookie = c
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/console/" || cookie.Secure {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/console/, not Secure over plain HTTP", cookie)
	}
	if strings.Contains(cookie.Value, e.acc.Secret) {
		t.Fatal("the cookie carries the key")
	}
	overview := b.follow(p)
	mustContain(t, overview, "Overview", "Acme", "Last 30 days")
	keys := b.get("/console/keys")
	mustContain(t, keys, "Acme", "••••"+e.acc.Key.Hint, "Never")
	mustLack(t, keys, e.acc.Secret)

	// Sign out ends the session: the old cookie opens nothing.
	old := b.cookie
	if p := b.post("/console/sign-out", nil); p.status != http.StatusSeeOther || b.cookie != "" {
		t.Fatalf("sign-out: %d, cookie %q", p.status, b.cookie)
	}
	b.cookie = old
	if p := b.get("/console/keys"); p.status != http.StatusSeeOther {
		t.Fatalf("keys page after sign-out: %d", p.status)
	}
}

func TestSecureCookieBehindHTTPS(t *testing.T) {
	e := newEnv(t)
	h, err := pluginapi.New(e.db, pluginapi.Config{Now: e.clock.Now, TrustedProxies: []string{"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote string
		secure bool
	}{{"10.1.2.3:5000", true}, {"192.0.2.1:5000", false}} {
		req := httptest.NewRequest(http.MethodPost, "/console/sign-in", strings.NewReader(url.Values{"key": {e.acc.Secret}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.RemoteAddr = tc.remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		cs := w.Result().Cookies()
		if w.Code != http.StatusSeeOther || len(cs) != 1 || cs[0].Secure != tc.secure {
			t.Fatalf("from %s: %d, cookies %+v; want Secure=%v", tc.remote, w.Code, cs, tc.secure)
		}
	}
}

func TestSignInIsRateLimited(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for i := 0; i < 10; i++ {
		if p := b.do(http.MethodPost, "/console/sign-in", url.Values{"key": {"AAAAAAAAAAAAAAAAAAAA"}}, "same-origin"); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, p.status)
		}
	}
	// The right key too is refused now, from this address, with a clear message.
	p := b.do(http.MethodPost, "/console/sign-in", url.Values{"key": {e.acc.Secret}}, "same-origin")
	if p.status != http.StatusTooManyRequests || b.cookie != "" || p.header.Get("Retry-After") == "" {
		t.Fatalf("11th attempt: %d, cookie %q, Retry-After %q", p.status, b.cookie, p.header.Get("Retry-After"))
	}
	mustContain(t, p, "Too many sign-in attempts from your address. Try again in 15 minutes.")
	// Another address is not affected; the window passes.
	other := e.browser()
	other.addr = "198.51.100.7:1234"
	other.signIn(e.acc.Secret)
	e.clock.Add(15 * time.Minute)
	b.signIn(e.acc.Secret)
}

func TestSessionEnds(t *testing.T) {
	e := newEnv(t)
	signedIn := func(b *browser) bool {
		return b.get("/console/keys").status == http.StatusOK
	}

	// Idle for 12 hours.
	b := e.browser()
	b.signIn(e.acc.Secret)
	e.clock.Add(12*time.Hour - time.Minute)
	if !signedIn(b) {
		t.Fatal("session ended before its idle timeout")
	}
	e.clock.Add(12 * time.Hour)
	if signedIn(b) {
		t.Fatal("session outlived 12 hours idle")
	}

	// 7 days at most, however busy.
	b.signIn(e.acc.Secret)
	for i := 0; i < 15; i++ {
		e.clock.Add(11 * time.Hour)
		if !signedIn(b) {
			t.Fatalf("busy session ended after %d hours", 11*(i+1))
		}
	}
	e.clock.Add(3 * time.Hour) // 168 h
	if signedIn(b) {
		t.Fatal("session outlived 7 days")
	}

	// A reset (through the API) ends every session of the account.
	b1, b2 := e.browser(), e.browser()
	b1.signIn(e.acc.Secret)
	b2.signIn(e.acc.Secret)
	if _, err := e.db.ResetPrimaryKey(context.Background(), store.SystemActor, e.acc.Account.ID, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if signedIn(b1) || signedIn(b2) {
		t.Fatal("a session outlived the key reset")
	}
	// The old key, still in its grace period, cannot open a new one.
	p := b1.do(http.MethodPost, "/console/sign-in", url.Values{"key": {e.acc.Secret}}, "same-origin")
	if p.status != http.StatusUnauthorized {
		t.Fatalf("sign-in with the key in grace: %d", p.status)
	}
	mustContain(t, p, "replaced by a reset")
}

func TestSuspensionEndsSessions(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	suspended := store.AccountSuspended
	if _, err := e.db.UpdateAccount(context.Background(), store.OperatorActor(""), e.acc.Account.ID, store.AccountPatch{Status: &suspended}); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/console/keys"); p.status != http.StatusSeeOther {
		t.Fatalf("keys page of a suspended account: %d", p.status)
	}
	p := b.do(http.MethodPost, "/console/sign-in", url.Values{"key": {e.acc.Secret}}, "same-origin")
	if p.status != http.StatusUnauthorized {
		t.Fatalf("sign-in to a suspended account: %d", p.status)
	}
	mustContain(t, p, "account suspended")
}

func TestCreateAliasLikeTheAPI(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	p := b.post("/console/aliases", url.Values{"name": {"Client site"}, "lifetime": {"7d"}, "scopes": {"*"},
		"allowed_sites": {"client.example\n"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", p.status, p.body)
	}
	keys := b.follow(p)
	secret := shownSecret(t, keys)
	mustContain(t, keys, "Client site", "this is the only time keyd shows it", "client.example", "Temporary", "in 7 days", "Active")

	// The same effect as POST /v1/aliases: validate sees it at once, bound
	// to its host; an audit row on the console channel; an alias.created
	// webhook event (the event is the audit row).
	if got := e.validate(secret, "https://client.example/"); got != "VALID" {
		t.Fatalf("validate the new alias: %s", got)
	}
	if got := e.validate(secret, "https://other.example/"); got != "SITE_NOT_ALLOWED" {
		t.Fatalf("validate from another host: %s", got)
	}
	a := e.consoleAudit(e.acc.Account.ID, store.EventAliasCreated)
	// GET /v1/audit shows where it came from.
	req := httptest.NewRequest(http.MethodGet, "/v1/audit?limit=1", nil)
	req.Header.Set("X-API-Key", e.acc.Secret)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	var audit struct {
		Events []struct {
			Action string `json:"action"`
			Actor  struct {
				Type    string  `json:"type"`
				Channel *string `json:"channel"`
			} `json:"actor"`
		} `json:"events"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &audit); err != nil || len(audit.Events) != 1 || audit.Events[0].Actor.Channel == nil ||
		*audit.Events[0].Actor.Channel != "console" || audit.Events[0].Actor.Type != "primary" {
		t.Fatalf("GET /v1/audit: %d %s", w.Code, w.Body.String())
	}
	als := e.aliases(e.acc.Account.ID)
	if len(als) != 1 || als[0].ExpiresAt == nil || !als[0].ExpiresAt.Equal(t0.Add(7*24*time.Hour)) || a.TargetID == nil || *a.TargetID != als[0].ID {
		t.Fatalf("aliases %+v, audit target %v", als, a.TargetID)
	}

	// The key is shown once: not on a reload.
	again := b.get("/console/keys")
	mustLack(t, again, secret, "this is the only time")
	mustContain(t, again, "••••"+secret[16:])
}

func TestCreateAliasBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	if _, err := e.db.CreateAlias(context.Background(), store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Taken"}); err != nil {
		t.Fatal(err)
	}
	before := e.lastAudit(e.acc.Account.ID).ID
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"name": {"bad/name"}, "lifetime": {"permanent"}}, 400, "Name must be 1 to 50 letters, digits, spaces, &#39;-&#39; or &#39;_&#39;"},
		{url.Values{"name": {"taken"}, "lifetime": {"permanent"}}, 409, "Name already taken"},
		{url.Values{"name": {"x"}, "lifetime": {"date"}, "expires_at": {"2020-01-01T00:00"}}, 400, "Expiry must be between 1 minute and 3650 days from now"},
		{url.Values{"name": {"x"}, "lifetime": {"date"}, "expires_at": {"soon"}}, 400, "Expiry must be a date and time"},
		{url.Values{"name": {"x"}, "lifetime": {"forever"}}, 400, "Expiry choose how long"},
		{url.Values{"name": {"x"}, "lifetime": {"permanent"}, "allowed_sites": {"not a host!"}}, 400, "Allowed sites "},
	} {
		p := b.post("/console/aliases", tc.form)
		if p.status != tc.status {
			t.Fatalf("%v: %d, want %d\n%s", tc.form, p.status, tc.status, p.body)
		}
		mustContain(t, p, tc.msg, `value="`+html.EscapeString(tc.form.Get("name"))+`"`)
	}
	if got := e.lastAudit(e.acc.Account.ID).ID; got != before || len(e.aliases(e.acc.Account.ID)) != 1 {
		t.Fatal("a refused form changed something")
	}
}

func TestAliasLimitDisablesCreate(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	slots, _ := e.db.AliasSlots(context.Background(), e.acc.Account.ID)
	for i := 0; i < slots.Limit; i++ {
		if p := b.post("/console/aliases", url.Values{"name": {"site " + string(rune('a'+i))}, "lifetime": {"permanent"}, "scopes": {"*"}}); p.status != http.StatusSeeOther {
			t.Fatalf("alias %d: %d\n%s", i, p.status, p.body)
		}
	}
	p := b.get("/console/keys")
	n := strconv.Itoa(slots.Limit)
	mustContain(t, p, "disabled", n+" of "+n+" aliases in use: deactivate one or change plan.")
	// Posting anyway is refused by the store's rule, in the API's words.
	p = b.post("/console/aliases", url.Values{"name": {"one more"}, "lifetime": {"permanent"}, "scopes": {"*"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("over the limit: %d", p.status)
	}
	mustContain(t, p, "The plan&#39;s alias limit is reached")
}

func TestAliasActionsLikeTheAPI(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	created, err := e.db.CreateAlias(context.Background(), store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Shop"})
	if err != nil {
		t.Fatal(err)
	}
	id := created.Key.ID
	b.get("/console/keys")

	b.follow(b.post("/console/aliases/"+id+"/deactivate", nil))
	if got := e.validate(created.Secret, "https://shop.example/"); got != "INACTIVE" {
		t.Fatalf("validate after deactivate: %s", got)
	}
	e.consoleAudit(e.acc.Account.ID, store.EventAliasDeactivated)

	b.follow(b.post("/console/aliases/"+id+"/reactivate", nil))
	if got := e.validate(created.Secret, "https://shop.example/"); got != "VALID" {
		t.Fatalf("validate after reactivate: %s", got)
	}
	e.consoleAudit(e.acc.Account.ID, store.EventAliasReactivated)

	edit := b.get("/console/aliases/" + id + "/edit")
	mustContain(t, edit, `value="Shop"`)
	p := b.post("/console/aliases/"+id, url.Values{"name": {"Shop two"}, "lifetime": {"30d"}, "scopes": {"*"}, "allowed_sites": {"shop.example"}})
	keys := b.follow(p)
	mustContain(t, keys, "Shop two", "shop.example", "in 30 days")
	if got := e.validate(created.Secret, "https://elsewhere.example/"); got != "SITE_NOT_ALLOWED" {
		t.Fatalf("validate from another site after edit: %s", got)
	}
	e.consoleAudit(e.acc.Account.ID, store.EventAliasUpdated)

	// A bad edit re-renders with the message and changes nothing.
	before := e.lastAudit(e.acc.Account.ID).ID
	p = b.post("/console/aliases/"+id, url.Values{"name": {"<b>no</b>"}, "lifetime": {"keep"}, "scopes": {"*"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("bad edit: %d", p.status)
	}
	mustContain(t, p, "Name must be 1 to 50", `value="&lt;b&gt;no&lt;/b&gt;"`)
	mustLack(t, p, "<b>no</b>")
	if e.lastAudit(e.acc.Account.ID).ID != before {
		t.Fatal("a refused edit changed something")
	}

	// Delete: a confirm page first, which says it cannot be undone.
	confirm := b.get("/console/aliases/" + id + "/delete")
	mustContain(t, confirm, "cannot be undone", `action="/console/aliases/`+id+`/delete"`)
	b.follow(b.post("/console/aliases/"+id+"/delete", nil))
	if got := e.validate(created.Secret, "https://shop.example/"); got == "VALID" {
		t.Fatal("a deleted alias still validates")
	}
	e.consoleAudit(e.acc.Account.ID, store.EventAliasDeleted)
}

func TestForgedAndTokenlessPostsChangeNothing(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	created, _ := e.db.CreateAlias(context.Background(), store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Shop"})
	before := e.lastAudit(e.acc.Account.ID).ID
	for _, path := range []string{"/console/aliases", "/console/aliases/" + created.Key.ID + "/deactivate",
		"/console/aliases/" + created.Key.ID + "/delete", "/console/keys/reset", "/console/sign-out"} {
		form := url.Values{"name": {"x"}, "lifetime": {"permanent"}, "grace_period": {"0s"}, "form_token": {b.token}}
		// From another site, even with the right token.
		if p := b.do(http.MethodPost, path, form, "cross-site"); p.status != http.StatusForbidden {
			t.Fatalf("cross-site POST %s: %d", path, p.status)
		}
		// Same site, without the token or with a wrong one.
		form.Del("form_token")
		if p := b.do(http.MethodPost, path, form, "same-origin"); p.status != http.StatusForbidden {
			t.Fatalf("POST %s without the form token: %d", path, p.status)
		}
		form.Set("form_token", strings.Repeat("0", len(b.token)))
		if p := b.do(http.MethodPost, path, form, "same-origin"); p.status != http.StatusForbidden {
			t.Fatalf("POST %s with a wrong form token: %d", path, p.status)
		}
	}
	if e.lastAudit(e.acc.Account.ID).ID != before || e.validate(created.Secret, "https://shop.example/") != "VALID" ||
		e.validate(e.acc.Secret, "https://shop.example/") != "VALID" {
		t.Fatal("a refused post changed something")
	}
	if b.get("/console/keys").status != http.StatusOK {
		t.Fatal("a refused sign-out ended the session")
	}
	// A sign-in posted from another site is refused too.
	other := e.browser()
	if p := other.do(http.MethodPost, "/console/sign-in", url.Values{"key": {e.acc.Secret}}, "cross-site"); p.status != http.StatusForbidden || other.cookie != "" {
		t.Fatalf("cross-site sign-in: %d", p.status)
	}
}

func TestAnotherAccountsAliasIsNotFound(t *testing.T) {
	e := newEnv(t)
	other := e.account("Other")
	theirs, _ := e.db.CreateAlias(context.Background(), store.SystemActor, other.Account.ID, store.NewAlias{Name: "Theirs"})
	b := e.browser()
	b.signIn(e.acc.Secret)
	id := theirs.Key.ID
	for _, p := range []page{
		b.get("/console/aliases/" + id + "/edit"),
		b.get("/console/aliases/" + id + "/delete"),
		b.post("/console/aliases/"+id, url.Values{"name": {"Mine"}, "lifetime": {"keep"}}),
		b.post("/console/aliases/"+id+"/deactivate", nil),
		b.post("/console/aliases/"+id+"/delete", nil),
	} {
		if p.status != http.StatusNotFound {
			t.Fatalf("another account's alias: %d, want 404", p.status)
		}
		mustLack(t, p, "Theirs")
	}
	if e.validate(theirs.Secret, "https://x.example/") != "VALID" {
		t.Fatal("another account's alias was changed")
	}
}

func TestResetKeyFromTheConsole(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	other := e.browser()
	b.signIn(e.acc.Secret)
	other.signIn(e.acc.Secret)

	confirm := b.get("/console/keys/reset")
	mustContain(t, confirm, "stops working", `value="0s"`, `value="1h"`, `value="24h"`, `value="7d"`)
	p := b.post("/console/keys/reset", url.Values{"grace_period": {"1h"}})
	keys := b.follow(p)
	newKey := shownSecret(t, keys)
	mustContain(t, keys, "New primary key", "works until 2025-03-14 16:09:26", "••••"+newKey[16:])

	// Like POST /v1/account/reset-key: the new key works, the old one for
	// an hour; a key.reset event on the console channel.
	if e.validate(newKey, "https://a.example/") != "VALID" || e.validate(e.acc.Secret, "https://a.example/") != "VALID" {
		t.Fatal("after a reset with grace both keys must validate")
	}
	e.consoleAudit(e.acc.Account.ID, store.EventKeyReset)
	e.clock.Add(time.Hour)
	if got := e.validate(e.acc.Secret, "https://a.example/"); got != "REVOKED" {
		t.Fatalf("old key after its grace: %s", got)
	}
	// This browser goes on with the new key's session; the other is out.
	if b.get("/console/keys").status != http.StatusOK {
		t.Fatal("the session that reset the key ended")
	}
	if other.get("/console/keys").status != http.StatusSeeOther {
		t.Fatal("another session outlived the reset")
	}
	// The new key is not shown again.
	mustLack(t, b.get("/console/keys"), newKey)

	// Another reset with a day's grace; then the owner ends it early.
	p = b.post("/console/keys/reset", url.Values{"grace_period": {"24h"}})
	keys = b.follow(p)
	newest := shownSecret(t, keys)
	mustContain(t, keys, "Stop it now", "••••"+newKey[16:])
	primaries, _ := e.db.ListPrimaryKeys(context.Background(), e.acc.Account.ID)
	var graceID string
	for _, k := range primaries {
		if k.InGraceAt(e.clock.Now()) {
			graceID = k.ID
		}
	}
	b.follow(b.post("/console/keys/"+graceID+"/revoke", nil))
	if got := e.validate(newKey, "https://a.example/"); got != "REVOKED" {
		t.Fatalf("key whose grace was ended: %s", got)
	}
	if got := e.validate(newest, "https://a.example/"); got != "VALID" {
		t.Fatalf("newest key: %s", got)
	}
	e.consoleAudit(e.acc.Account.ID, store.EventKeyRevoked)

	// A grace period out of range is refused and changes nothing.
	before := e.lastAudit(e.acc.Account.ID).ID
	if p := b.post("/console/keys/reset", url.Values{"grace_period": {"9d"}}); p.status != http.StatusBadRequest {
		t.Fatalf("grace 9d: %d", p.status)
	}
	if e.lastAudit(e.acc.Account.ID).ID != before {
		t.Fatal("a refused reset changed something")
	}
}

func TestNamesAreEscaped(t *testing.T) {
	e := newEnv(t)
	// The account name comes from the operator; sites are whatever the
	// store accepts. Neither may become markup.
	evil, err := e.db.CreateAccount(context.Background(), store.OperatorActor(""), store.NewAccount{
		Name: `<script>alert(1)</script>"'`, Email: "evil@example.com", Plan: "pro"})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	p := b.signIn(evil.Secret)
	mustLack(t, p, "<script>alert(1)</script>")
	mustContain(t, p, "&lt;script&gt;alert(1)&lt;/script&gt;")
}

func TestSignInLink(t *testing.T) {
	e := newEnv(t)
	h, err := pluginapi.New(e.db, pluginapi.Config{Now: e.clock.Now, AdminToken: "admin-token-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	link := func(accountID string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/admin/v1/accounts/"+accountID+"/sign-in-link", nil)
		req.Header.Set("Authorization", "Bearer admin-token-0123456789abcdef")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		var out struct {
			URL string `json:"url"`
		}
		json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out.URL
	}
	status, u := link(e.acc.Account.ID)
	if status != http.StatusCreated || !strings.HasPrefix(u, "http://example.com/console/sign-in/link?token=") {
		t.Fatalf("admin sign-in link: %d %q", status, u)
	}
	if a := e.lastAudit(e.acc.Account.ID); a.Action != store.EventSignInLink || a.Actor.Type != store.ActorOperator {
		t.Fatalf("audit: %+v", a)
	}
	path := strings.TrimPrefix(u, "http://example.com")
	token := path[strings.Index(path, "token=")+len("token="):]

	// Opening the link asks and spends nothing, however often.
	b := e.browser()
	for i := 0; i < 2; i++ {
		p := b.get(path)
		if p.status != http.StatusOK || b.cookie != "" {
			t.Fatalf("GET link: %d, cookie %q", p.status, b.cookie)
		}
		mustContain(t, p, "Sign in to Acme", `name="token" value="`+token+`"`)
	}
	// Using it signs in and leads to the keys page to reset the key.
	p := b.do(http.MethodPost, "/console/sign-in/link", url.Values{"token": {token}}, "same-origin")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/keys" || b.cookie == "" {
		t.Fatalf("POST link: %d to %q", p.status, p.header.Get("Location"))
	}
	mustContain(t, b.get("/console/keys"), "Signed in with a one-time link", "••••"+e.acc.Key.Hint)
	// Once only.
	other := e.browser()
	if p := other.do(http.MethodPost, "/console/sign-in/link", url.Values{"token": {token}}, "same-origin"); p.status != http.StatusNotFound || other.cookie != "" {
		t.Fatalf("second use: %d", p.status)
	}
	mustContain(t, other.get(path), "used already or has expired")
	// From another site: refused, not spent.
	_, u = link(e.acc.Account.ID)
	token = u[strings.Index(u, "token=")+len("token="):]
	if p := other.do(http.MethodPost, "/console/sign-in/link", url.Values{"token": {token}}, "cross-site"); p.status != http.StatusForbidden {
		t.Fatalf("cross-site use: %d", p.status)
	}
	// 15 minutes.
	e.clock.Add(15 * time.Minute)
	if p := other.do(http.MethodPost, "/console/sign-in/link", url.Values{"token": {token}}, "same-origin"); p.status != http.StatusNotFound || other.cookie != "" {
		t.Fatalf("use after 15 minutes: %d", p.status)
	}
	// Not for a suspended account, nor one that does not exist.
	suspended := store.AccountSuspended
	e.db.UpdateAccount(context.Background(), store.OperatorActor(""), e.acc.Account.ID, store.AccountPatch{Status: &suspended})
	if status, _ := link(e.acc.Account.ID); status != http.StatusForbidden {
		t.Fatalf("link for a suspended account: %d", status)
	}
	if status, _ := link("acc_0000000000000000"); status != http.StatusNotFound {
		t.Fatalf("link for no account: %d", status)
	}
}
