package pluginapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
	"keyd/store/storetest"
	"keyd/webhooks"
)

// relToken is the admin token of the reliability tests' router.
const relToken = "rel-admin-token-0123456789abcdef0123456789"

// relEnv is the real router over a real store (a new database of the engine
// the tests run on) for the bad-input and authorisation tests, with a clock
// they move by hand.
type relEnv struct {
	tb  testing.TB
	dsn string
	db  *store.DB
	eng *gin.Engine
	raw *sql.DB // a second connection, for snapshots

	closeOnce sync.Once

	mu  sync.Mutex
	now time.Time
}

// newRelEnv opens a store on a new database and builds the router; token ""
// turns the admin API off.
func newRelEnv(tb testing.TB, token string) *relEnv {
	tb.Helper()
	return openRelEnv(tb, token, storetest.DSN(tb), time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
}

// openRelEnv opens the store at dsn (created if need be) with the clock at now.
func openRelEnv(tb testing.TB, token, dsn string, now time.Time) *relEnv {
	tb.Helper()
	e := &relEnv{tb: tb, dsn: dsn, now: now}
	db, err := store.Open(context.Background(), e.dsn, StoreOptions(e.dsn, store.WithClock(e.clock))...)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(db, Config{Now: e.clock, AdminToken: token})
	if err != nil {
		db.Close()
		tb.Fatal(err)
	}
	e.db, e.eng = db, h.(*gin.Engine)
	e.raw, err = store.OpenSQL(e.dsn)
	if err != nil {
		db.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(e.close)
	return e
}

// close closes the store and the snapshot connection; it may be called again.
func (e *relEnv) close() {
	e.closeOnce.Do(func() {
		e.raw.Close()
		if err := e.db.Close(); err != nil {
			e.tb.Error(err)
		}
	})
}

// relTemplate builds the two-account fixture once and closes it; each
// caller of copy gets its own copy of that database, which is much quicker
// than building the fixture again.
type relTemplate struct {
	dsn  string
	now  time.Time
	a, b *relAccount
}

func newRelTemplate(tb testing.TB) *relTemplate {
	tb.Helper()
	e := newRelEnv(tb, "")
	a := e.relAccountFixture("Acme")
	b := e.relAccountFixture("Other")
	e.close()
	return &relTemplate{dsn: e.dsn, now: e.clock(), a: a, b: b}
}

// copy opens a copy of the template's database.
func (tpl *relTemplate) copy(tb testing.TB, token string) *relEnv {
	tb.Helper()
	return openRelEnv(tb, token, storetest.Copy(tb, tpl.dsn), tpl.now)
}

func (e *relEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *relEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// relRequest is one request: a body of a content type ("" sends none) and
// headers as name, value pairs. chunked hides the body's length.
type relRequest struct {
	method, target string
	contentType    string
	body           []byte
	chunked        bool
	headers        []string
}

// relAnswer is what the router answered, with its JSON body decoded.
type relAnswer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// code is the answer's code in either error shape.
func (a relAnswer) code() string {
	if e, ok := a.body["error"].(map[string]any); ok {
		c, _ := e["code"].(string)
		return c
	}
	c, _ := a.body["code"].(string)
	return c
}

func (a relAnswer) String() string {
	raw := a.raw
	if len(raw) > 300 {
		raw = raw[:300] + "..."
	}
	return fmt.Sprintf("%d %s", a.status, raw)
}

// send serves one request. A panic escaping the router, a 5xx or an answer
// that is not a JSON object (the OpenAPI document aside) fails the test.
func (e *relEnv) send(r relRequest) (ans relAnswer) {
	e.tb.Helper()
	var body io.Reader
	if r.body != nil {
		body = strings.NewReader(string(r.body))
		if r.chunked {
			body = io.MultiReader(body) // hides the length from httptest
		}
	}
	req := httptest.NewRequest(r.method, r.target, body)
	if r.chunked {
		req.ContentLength = -1
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for i := 0; i+1 < len(r.headers); i += 2 {
		req.Header.Set(r.headers[i], r.headers[i+1])
	}
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if v := recover(); v != nil {
				e.tb.Fatalf("%s %.80s: panic escaped the router: %v", r.method, r.target, v)
			}
		}()
		e.eng.ServeHTTP(rec, req)
	}()
	ans = relAnswer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Code >= 500 {
		e.tb.Errorf("%s %.80s answered %s", r.method, r.target, ans)
	}
	if ans.raw != "" && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/yaml") {
		if err := json.Unmarshal(rec.Body.Bytes(), &ans.body); err != nil {
			e.tb.Errorf("%s %.80s: answer is not a JSON object: %v: %s", r.method, r.target, err, ans)
		}
	}
	return ans
}

// snapshot is every row of every table, each as text, sorted per table;
// pending activity is flushed first so that what sits in memory counts too.
func (e *relEnv) snapshot() map[string][]string {
	e.tb.Helper()
	if err := e.db.FlushActivity(context.Background()); err != nil {
		e.tb.Fatal(err)
	}
	rows, err := e.raw.Query(relTablesSQL(e.dsn))
	if err != nil {
		e.tb.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			e.tb.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	out := map[string][]string{}
	for _, table := range tables {
		rows, err := e.raw.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			e.tb.Fatal(err)
		}
		cols, _ := rows.Columns()
		list := []string{}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				e.tb.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%s=%q ", cols[i], fmt.Sprint(v))
			}
			list = append(list, b.String())
		}
		rows.Close()
		sort.Strings(list)
		out[table] = list
	}
	return out
}

// relTablesSQL lists the names of the database's tables.
func relTablesSQL(dsn string) string {
	if store.IsPostgresURL(dsn) {
		return `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	}
	return `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
}

// relDiff describes how two snapshots differ; "" when they do not. Only rows
// that keep (if keep is not nil) are compared.
func relDiff(before, after map[string][]string, keep func(row string) bool) string {
	var b strings.Builder
	names := map[string]bool{}
	for t := range before {
		names[t] = true
	}
	for t := range after {
		names[t] = true
	}
	sorted := make([]string, 0, len(names))
	for t := range names {
		sorted = append(sorted, t)
	}
	sort.Strings(sorted)
	for _, t := range sorted {
		count := func(rows []string) map[string]int {
			m := map[string]int{}
			for _, r := range rows {
				if keep == nil || keep(r) {
					m[r]++
				}
			}
			return m
		}
		was, is := count(before[t]), count(after[t])
		for r, n := range was {
			if is[r] < n {
				fmt.Fprintf(&b, "%s: lost %.200s\n", t, r)
			}
		}
		for r, n := range is {
			if was[r] < n {
				fmt.Fprintf(&b, "%s: gained %.200s\n", t, r)
			}
		}
	}
	return b.String()
}

// relAccount is one account of the fixture with a resource of every kind.
type relAccount struct {
	id         string
	primary    string // current primary key
	primaryID  string
	revoked    string // primary key before a reset without grace
	revokedID  string
	alias      string // an active alias
	aliasID    string
	inactive   string // a deactivated alias
	inactiveID string
	expired    string // an alias past its expiry
	expiredID  string
	subID      string // a subaccount
	webhookID  string
	messageID  string // a test message to the webhook
}

// ids are every id of the account's resources, to tell its rows apart.
func (a *relAccount) ids() []string {
	return []string{a.id, a.primaryID, a.revokedID, a.aliasID, a.inactiveID, a.expiredID, a.subID, a.webhookID, a.messageID}
}

// owns reports whether a snapshot row names one of the account's resources.
func (a *relAccount) owns(row string) bool {
	for _, id := range a.ids() {
		if id != "" && strings.Contains(row, id) {
			return true
		}
	}
	return false
}

// relAccountFixture creates, through the store, an account on the pro plan
// with a reset primary key, an active, an inactive and an expired alias, a
// subaccount, a webhook and a test message. The clock moves 2h forward.
func (e *relEnv) relAccountFixture(name string) *relAccount {
	e.tb.Helper()
	ctx := context.Background()
	must := func(err error) {
		e.tb.Helper()
		if err != nil {
			e.tb.Fatal(err)
		}
	}
	a := &relAccount{}
	c, err := e.db.CreateAccount(ctx, store.SystemActor, store.NewAccount{Name: name, Email: strings.ToLower(name) + "@example.com", Plan: "pro", Credits: 1000})
	must(err)
	a.id, a.revoked, a.revokedID = c.Account.ID, c.Secret, c.Key.ID
	reset, err := e.db.ResetPrimaryKey(ctx, store.SystemActor, a.id, 0)
	must(err)
	a.primary, a.primaryID = reset.Secret, reset.Key.ID

	alias := func(n string, expires *time.Time) (string, string) {
		c, err := e.db.CreateAlias(ctx, store.SystemActor, a.id, store.NewAlias{Name: n, ExpiresAt: expires})
		must(err)
		return c.Secret, c.Key.ID
	}
	a.alias, a.aliasID = alias("Active one", nil)
	a.inactive, a.inactiveID = alias("Inactive one", nil)
	// It counts its sites, and client.example holds its slot (for DELETE
	// /v1/keys/{id}/sites/{host}).
	one := 1
	_, err = e.db.UpdateAlias(ctx, store.SystemActor, a.id, a.inactiveID, store.AliasPatch{
		LimitsPatch: store.LimitsPatch{SetMaxSites: true, MaxSites: &one}})
	must(err)
	counted, _ := e.db.LookupKey(store.HashKey(a.inactive))
	_, err = e.db.UseSite(ctx, counted, "https://client.example/", e.clock())
	must(err)
	_, err = e.db.SetAliasStatus(ctx, store.SystemActor, a.id, a.inactiveID, false)
	must(err)
	soon := e.clock().Add(time.Hour)
	a.expired, a.expiredID = alias("Expiring one", &soon)

	sub, err := e.db.CreateSubaccount(ctx, store.SystemActor, a.id, store.NewAccount{Name: name + " sub", Email: "sub@example.com", Credits: 100})
	must(err)
	a.subID = sub.Account.ID
	w, err := e.db.CreateWebhook(ctx, store.SystemActor, a.id, store.NewWebhook{URL: "https://hooks.example.com/" + strings.ToLower(name),
		Events: []string{"*"}, Secret: webhooks.NewSecret()})
	must(err)
	a.webhookID = w.ID
	m, err := e.db.SendTestMessage(ctx, store.SystemActor, a.id, a.webhookID)
	must(err)
	a.messageID = m.ID
	e.advance(2 * time.Hour) // the expiring alias is now past its expiry
	return a
}

// relRoutes are the router's routes as "METHOD /path".
func (e *relEnv) relRoutes() []string {
	var out []string
	for _, r := range e.eng.Routes() {
		if consoleRoute(r.Path) {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	sort.Strings(out)
	return out
}

// consoleRoute reports whether path is the owner console's (or / which
// redirects there): HTML pages with their own sessions and forms, not the
// JSON API that openapi.yaml documents and these tables describe. The
// console's authentication, forgery protection and answers are tested in
// plugin-api/console.
func consoleRoute(path string) bool {
	return path == "/" || strings.HasPrefix(path, "/console/")
}

// Who may call a route.
const (
	relPublic = "public" // anyone
	relPlugin = "plugin" // /v1/validate and /v1/usage: any key
	relOwner  = "owner"  // the account's primary key
	relAdmin  = "admin"  // the admin token
)

// relRoute is one route with a request that succeeds on the fixture.
// Placeholders in path: {account} {key} {revoked} {alias} {inactive} {sub} {webhook}
// {message}.
type relRoute struct {
	route    string // "METHOD /path" as the router lists it
	who      string
	path     string
	body     string // a body that succeeds; "" sends none
	ok       int    // the status it succeeds with
	readBody bool   // the handler reads a JSON body (else: "no body is read")
	emptyOK  bool   // an empty body is accepted as {}
	query    []string
}

// relRouteTable lists every route of routes.go; the tests fail when the
// router has a route missing here, so a new route must be described.
var relRouteTable = []relRoute{
	{route: "GET /healthz", who: relPublic, path: "/healthz", ok: 200},
	{route: "GET /readyz", who: relPublic, path: "/readyz", ok: 200},
	{route: "GET /openapi.yaml", who: relPublic, path: "/openapi.yaml", ok: 200},
	{route: "GET /.well-known/keyd-receipt-keys.json", who: relPublic, path: "/.well-known/keyd-receipt-keys.json", ok: 200},

	{route: "POST /v1/validate", who: relPlugin, path: "/v1/validate", ok: 200, readBody: true, emptyOK: true,
		body: `{"site":"https://client.example/","plugin":"p","plugin_version":"1.0","wp_version":"6.5","scope":"optimize"}`},
	{route: "POST /v1/usage", who: relPlugin, path: "/v1/usage", ok: 200, readBody: true,
		body: `{"units":1,"scope":"optimize","idempotency_key":"order-1"}`},
	{route: "POST /v1/sites/deactivate", who: relPlugin, path: "/v1/sites/deactivate", ok: 200, readBody: true,
		body: `{"site":"https://client.example/"}`},
	// The ShortPixel-style check reads its key from the form or query (no
	// credential header) and answers 200 whatever it finds (spio_test.go).
	{route: "POST /v2/api-status.php", who: relPublic, path: "/v2/api-status.php", ok: 200},
	{route: "GET /v2/api-status.php", who: relPublic, path: "/v2/api-status.php", ok: 200},
	{route: "POST /v2/api-status", who: relPublic, path: "/v2/api-status", ok: 200},
	{route: "GET /v2/api-status", who: relPublic, path: "/v2/api-status", ok: 200},

	{route: "GET /v1/account", who: relOwner, path: "/v1/account", ok: 200},
	{route: "PATCH /v1/account", who: relOwner, path: "/v1/account", ok: 200, readBody: true, body: `{"low_credit_threshold":5}`},
	{route: "POST /v1/account/reset-key", who: relOwner, path: "/v1/account/reset-key", ok: 200, readBody: true, emptyOK: true, body: `{"grace_period":"1h"}`},
	{route: "GET /v1/keys", who: relOwner, path: "/v1/keys", ok: 200},
	{route: "PATCH /v1/keys/:id", who: relOwner, path: "/v1/keys/{key}", ok: 200, readBody: true, body: `{"name":"Main key","scopes":["*"]}`},
	{route: "GET /v1/keys/:id/sites", who: relOwner, path: "/v1/keys/{key}/sites", ok: 200},
	{route: "DELETE /v1/keys/:id/sites/:host", who: relOwner, path: "/v1/keys/{inactive}/sites/client.example", ok: 204},
	{route: "POST /v1/keys/:id/revoke", who: relOwner, path: "/v1/keys/{revoked}/revoke", ok: 200, readBody: true, emptyOK: true, body: `{}`},
	{route: "POST /v1/aliases", who: relOwner, path: "/v1/aliases", ok: 201, readBody: true,
		body: `{"name":"New client","ttl":"7d","scopes":["optimize"],"allowed_sites":["client.example"]}`},
	{route: "GET /v1/aliases", who: relOwner, path: "/v1/aliases", ok: 200, query: []string{"status", "limit", "before"}},
	{route: "GET /v1/aliases/:id", who: relOwner, path: "/v1/aliases/{alias}", ok: 200},
	{route: "PATCH /v1/aliases/:id", who: relOwner, path: "/v1/aliases/{alias}", ok: 200, readBody: true,
		body: `{"name":"Renamed","expires_at":"2030-01-01T00:00:00Z","scopes":["*"],"allowed_sites":[]}`},
	{route: "DELETE /v1/aliases/:id", who: relOwner, path: "/v1/aliases/{alias}", ok: 204},
	{route: "POST /v1/aliases/:id/deactivate", who: relOwner, path: "/v1/aliases/{alias}/deactivate", ok: 200},
	{route: "POST /v1/aliases/:id/reactivate", who: relOwner, path: "/v1/aliases/{inactive}/reactivate", ok: 200},
	{route: "GET /v1/usage", who: relOwner, path: "/v1/usage", ok: 200, query: []string{"from", "to", "key_id"}},
	{route: "POST /v1/subaccounts", who: relOwner, path: "/v1/subaccounts", ok: 201, readBody: true,
		body: `{"name":"Client Co","email":"it@client.example","credits":10}`},
	{route: "GET /v1/subaccounts", who: relOwner, path: "/v1/subaccounts", ok: 200, query: []string{"limit", "before"}},
	{route: "POST /v1/subaccounts/:id/credits", who: relOwner, path: "/v1/subaccounts/{sub}/credits", ok: 200, readBody: true, body: `{"amount":5}`},
	{route: "POST /v1/subaccounts/:id/suspend", who: relOwner, path: "/v1/subaccounts/{sub}/suspend", ok: 200, readBody: true, emptyOK: true, body: `{}`},
	{route: "POST /v1/subaccounts/:id/unsuspend", who: relOwner, path: "/v1/subaccounts/{sub}/unsuspend", ok: 200, readBody: true, emptyOK: true, body: `{}`},
	{route: "GET /v1/subaccounts/:id/keys", who: relOwner, path: "/v1/subaccounts/{sub}/keys", ok: 200},
	{route: "GET /v1/audit", who: relOwner, path: "/v1/audit", ok: 200, query: []string{"limit", "before"}},
	{route: "POST /v1/webhooks", who: relOwner, path: "/v1/webhooks", ok: 201, readBody: true,
		body: `{"url":"https://hooks.example.com/new","events":["alias.*","key.reset"],"description":"site"}`},
	{route: "GET /v1/webhooks", who: relOwner, path: "/v1/webhooks", ok: 200},
	{route: "GET /v1/webhooks/:id", who: relOwner, path: "/v1/webhooks/{webhook}", ok: 200},
	{route: "PATCH /v1/webhooks/:id", who: relOwner, path: "/v1/webhooks/{webhook}", ok: 200, readBody: true,
		body: `{"url":"https://hooks.example.com/moved","events":["*"],"enabled":true,"description":"moved"}`},
	{route: "DELETE /v1/webhooks/:id", who: relOwner, path: "/v1/webhooks/{webhook}", ok: 204},
	{route: "POST /v1/webhooks/:id/rotate-secret", who: relOwner, path: "/v1/webhooks/{webhook}/rotate-secret", ok: 200, readBody: true, emptyOK: true, body: `{}`},
	{route: "POST /v1/webhooks/:id/test", who: relOwner, path: "/v1/webhooks/{webhook}/test", ok: 202, readBody: true, emptyOK: true, body: `{}`},
	{route: "GET /v1/webhooks/:id/deliveries", who: relOwner, path: "/v1/webhooks/{webhook}/deliveries", ok: 200, query: []string{"limit", "status", "before"}},
	{route: "POST /v1/webhooks/:id/recover", who: relOwner, path: "/v1/webhooks/{webhook}/recover", ok: 202, readBody: true, body: `{"since":"2020-01-01T00:00:00Z"}`},
	{route: "POST /v1/messages/:id/resend", who: relOwner, path: "/v1/messages/{message}/resend", ok: 202, readBody: true, emptyOK: true, body: `{}`},

	{route: "POST /admin/v1/accounts", who: relAdmin, path: "/admin/v1/accounts", ok: 201, readBody: true,
		body: `{"name":"New Co","email":"ops@new.example","plan":"pro","credits":10}`},
	{route: "GET /admin/v1/accounts", who: relAdmin, path: "/admin/v1/accounts", ok: 200, query: []string{"limit", "after", "search"}},
	{route: "GET /admin/v1/accounts/:id", who: relAdmin, path: "/admin/v1/accounts/{account}", ok: 200},
	{route: "PATCH /admin/v1/accounts/:id", who: relAdmin, path: "/admin/v1/accounts/{account}", ok: 200, readBody: true,
		body: `{"plan":"mega","status":"active","alias_limit":10}`},
	{route: "POST /admin/v1/accounts/:id/credits", who: relAdmin, path: "/admin/v1/accounts/{account}/credits", ok: 200, readBody: true,
		body: `{"amount":50,"reason":"purchase"}`},
	{route: "POST /admin/v1/accounts/:id/reset-key", who: relAdmin, path: "/admin/v1/accounts/{account}/reset-key", ok: 200, readBody: true, emptyOK: true,
		body: `{"grace_period":"1h"}`},
	{route: "POST /admin/v1/accounts/:id/sign-in-link", who: relAdmin, path: "/admin/v1/accounts/{account}/sign-in-link", ok: 201, readBody: true, emptyOK: true,
		body: `{}`},
	{route: "GET /admin/v1/plans", who: relAdmin, path: "/admin/v1/plans", ok: 200},
	{route: "PUT /admin/v1/plans/:name", who: relAdmin, path: "/admin/v1/plans/gold?create=true", ok: 200, readBody: true,
		body: `{"alias_limit":3,"subaccount_limit":1,"rate_limit_per_minute":100}`},
	{route: "GET /admin/v1/jobs", who: relAdmin, path: "/admin/v1/jobs", ok: 200},
}

// target is the route's path with the account's ids.
func (r relRoute) target(a *relAccount) string {
	return strings.NewReplacer("{account}", a.id, "{key}", a.primaryID, "{revoked}", a.revokedID, "{alias}", a.aliasID, "{inactive}", a.inactiveID,
		"{sub}", a.subID, "{webhook}", a.webhookID, "{message}", a.messageID).Replace(r.path)
}

// namesResource reports whether the path names one of an account's resources.
func (r relRoute) namesResource() bool { return strings.Contains(r.path, "{") }

// checkRelRouteTable fails unless the table describes exactly the router's routes.
func checkRelRouteTable(tb testing.TB, e *relEnv) {
	tb.Helper()
	described := map[string]bool{}
	for _, r := range relRouteTable {
		described[r.route] = true
	}
	listed := map[string]bool{}
	for _, r := range e.relRoutes() {
		listed[r] = true
		if !described[r] {
			tb.Errorf("route %s is not described in relRouteTable", r)
		}
	}
	for r := range described {
		if !listed[r] {
			tb.Errorf("relRouteTable describes %s, which the router does not have", r)
		}
	}
}
