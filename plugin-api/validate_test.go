package pluginapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"keyd/store"
)

// validateFixture holds one key in every state the validate endpoint tells apart.
type validateFixture struct {
	*testEnv
	account                store.Created // active, pro, 1200 credits
	revoked                string        // primary key reset away
	suspended              string        // primary key of a suspended account
	alias, aliasID         string        // active alias expiring in a day
	expired, expiredMarked string        // alias past expires_at; alias marked expired
	inactive, deleted      string        // deactivated alias; deleted alias
	aliasOfSuspended       string        // active alias of the suspended account
	aliasExpiresAt         time.Time
	expiredAt              time.Time
}

func newValidateFixture(t *testing.T) *validateFixture {
	t.Helper()
	ctx := context.Background()
	f := &validateFixture{testEnv: newEnv(t, testToken)}
	f.account = f.createStoreAccount("Acme", "pro", 1200)

	r := f.createStoreAccount("Reset", "free", 0)
	if _, err := f.db.ResetPrimaryKey(ctx, store.OperatorActor(""), r.Account.ID, 0); err != nil {
		t.Fatal(err)
	}
	f.revoked = r.Secret

	s := f.createStoreAccount("Suspended", "mega", 5)
	if _, err := f.db.UpdateAccount(ctx, store.OperatorActor(""), s.Account.ID, store.AccountPatch{Status: ptr(store.AccountSuspended)}); err != nil {
		t.Fatal(err)
	}
	f.suspended = s.Secret

	acc := f.account.Account.ID
	f.aliasExpiresAt = t0.Add(24 * time.Hour)
	f.expiredAt = t0.Add(-time.Hour)
	f.alias, f.expired, f.expiredMarked, f.inactive, f.deleted, f.aliasOfSuspended =
		store.NewKey(), store.NewKey(), store.NewKey(), store.NewKey(), store.NewKey(), store.NewKey()
	f.aliasID = insertKeyRow(t, f.dsn, acc, "alias", "Client site", "active", f.alias, &f.aliasExpiresAt, `["optimize"]`)
	// Past its expiry but not yet marked by a job: EXPIRED all the same.
	insertKeyRow(t, f.dsn, acc, "alias", "Temp", "active", f.expired, &f.expiredAt, `["*"]`)
	insertKeyRow(t, f.dsn, acc, "alias", "Marked", "expired", f.expiredMarked, &f.expiredAt, `["*"]`)
	insertKeyRow(t, f.dsn, acc, "alias", "Paused", "inactive", f.inactive, nil, `["*"]`)
	insertKeyRow(t, f.dsn, acc, "alias", "Gone", "revoked", f.deleted, nil, `["*"]`)
	insertKeyRow(t, f.dsn, s.Account.ID, "alias", "Sub", "active", f.aliasOfSuspended, nil, `["*"]`)
	f.reopen()
	return f
}

func ptr[T any](v T) *T { return &v }

// transports are the three ways a plugin may send its key.
var transports = []struct {
	name string
	send func(e *testEnv, key string) response
}{
	{"json", (*testEnv).validateJSON},
	{"form", (*testEnv).validateForm},
	{"header", (*testEnv).validateHeader},
}

func TestValidateCodes(t *testing.T) {
	f := newValidateFixture(t)
	tests := []struct {
		name   string
		key    string
		status int
		code   string
	}{
		{"primary", f.account.Secret, 200, "VALID"},
		{"alias", f.alias, 200, "VALID"},
		{"too short", "abc", 401, "MALFORMED"},
		{"21 characters", f.account.Secret + "x", 401, "MALFORMED"},
		{"19 characters", f.account.Secret[:19], 401, "MALFORMED"},
		{"punctuation", "abcdefghij-BCDEFGHIJ", 401, "MALFORMED"},
		{"space inside", "abcdefghij BCDEFGHIJ", 401, "MALFORMED"},
		{"unknown key", store.NewKey(), 401, "NOT_FOUND"},
		{"primary reset away", f.revoked, 401, "REVOKED"},
		{"deleted alias", f.deleted, 401, "REVOKED"},
		{"alias past expires_at", f.expired, 401, "EXPIRED"},
		{"alias marked expired", f.expiredMarked, 401, "EXPIRED"},
		{"deactivated alias", f.inactive, 401, "INACTIVE"},
		{"suspended account", f.suspended, 401, "ACCOUNT_SUSPENDED"},
		{"alias of a suspended account", f.aliasOfSuspended, 401, "ACCOUNT_SUSPENDED"},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				res := tr.send(f.testEnv, tt.key)
				if tt.code == "VALID" {
					if res.status != 200 || str(res.body, "code") != "VALID" || res.body["valid"] != true {
						t.Fatalf("got %d %s", res.status, res.raw)
					}
					return
				}
				checkFailure(t, res, tt.status, tt.code)
			})
		}
	}
	// The EXPIRED answer says when, so the plugin can word its notice.
	res := f.validateJSON(f.expired)
	if got := str(res.body, "expires_at"); got != f.expiredAt.Format(time.RFC3339) {
		t.Errorf("EXPIRED expires_at = %q, want %q", got, f.expiredAt.Format(time.RFC3339))
	}
	if !strings.Contains(f.log.String(), "status=401") {
		t.Error("the request log recorded no 401")
	}
	for _, k := range []string{f.account.Secret, f.alias, f.revoked, f.suspended, f.expired, f.inactive, f.deleted} {
		if strings.Contains(f.log.String(), k) {
			t.Errorf("the request log holds the key ...%s", store.KeyHint(k))
		}
	}
}

func TestValidateBodyShape(t *testing.T) {
	f := newValidateFixture(t)

	res := f.validateJSON(f.account.Secret)
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	checkFields(t, "200 body", res.body, "valid", "code", "key", "account")
	checkFields(t, "key", res.body["key"], "id", "type", "name", "hint", "expires_at", "scopes")
	checkFields(t, "account", res.body["account"], "id", "plan", "status", "credits")
	var body struct {
		Valid bool
		Code  string
		Key   struct {
			ID        string
			Type      string
			Name      string
			Hint      string
			ExpiresAt *string `json:"expires_at"`
			Scopes    []string
		}
		Account struct {
			ID      string
			Plan    string
			Status  string
			Credits int64
		}
	}
	if err := json.Unmarshal([]byte(res.raw), &body); err != nil {
		t.Fatal(err)
	}
	k, a := body.Key, body.Account
	if !body.Valid || body.Code != "VALID" || k.ID != f.account.Key.ID || k.Type != "primary" || k.Name != "Primary key" ||
		k.Hint != store.KeyHint(f.account.Secret) || k.ExpiresAt != nil || len(k.Scopes) != 1 || k.Scopes[0] != "*" {
		t.Errorf("key part = %+v", k)
	}
	if a.ID != f.account.Account.ID || a.Plan != "pro" || a.Status != "active" || a.Credits != 1200 {
		t.Errorf("account part = %+v", a)
	}
	if strings.Contains(res.raw, f.account.Secret) {
		t.Error("the answer repeats the key")
	}
	if dig(res.body, "key", "expires_at") != nil {
		t.Errorf("expires_at of a permanent key = %v, want null", dig(res.body, "key", "expires_at"))
	}

	res = f.validateForm(f.alias)
	if err := json.Unmarshal([]byte(res.raw), &body); err != nil {
		t.Fatal(err)
	}
	if body.Key.ID != f.aliasID || body.Key.Type != "alias" || body.Key.Name != "Client site" ||
		body.Key.ExpiresAt == nil || *body.Key.ExpiresAt != f.aliasExpiresAt.Format(time.RFC3339) ||
		len(body.Key.Scopes) != 1 || body.Key.Scopes[0] != "optimize" || body.Account.ID != f.account.Account.ID {
		t.Errorf("alias answer = %s", res.raw)
	}
}

func TestValidateInvalidRequests(t *testing.T) {
	f := newValidateFixture(t)
	key := f.account.Secret
	long := strings.Repeat("a", 3000)
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name, contentType, body string
		header                  string // X-API-Key
	}{
		{"json: no key field", "application/json", `{"site":"https://example.com"}`, ""},
		{"json: empty object", "application/json", `{}`, ""},
		{"json: empty key", "application/json", `{"key":""}`, ""},
		{"json: null", "application/json", `null`, ""},
		{"json: truncated", "application/json", `{"key":"` + key, ""},
		{"json: not json", "application/json", `key=` + key, ""},
		{"json: array", "application/json", `["` + key + `"]`, ""},
		{"json: string", "application/json", `"` + key + `"`, ""},
		{"json: unknown field", "application/json", `{"key":"` + key + `","color":"red"}`, ""},
		{"json: key is a number", "application/json", `{"key":12345678901234567890}`, ""},
		{"json: key is an object", "application/json", `{"key":{"k":"v"}}`, ""},
		{"json: site is a bool", "application/json", `{"key":"` + key + `","site":true}`, ""},
		{"json: site too long", "application/json", `{"key":"` + key + `","site":"` + long + `"}`, ""},
		{"json: plugin too long", "application/json", `{"key":"` + key + `","plugin":"` + long[:101] + `"}`, ""},
		{"json: scope too long", "application/json", `{"key":"` + key + `","scope":"` + long[:65] + `"}`, ""},
		{"json: key too long", "application/json", `{"key":"` + long + `"}`, ""},
		{"json: duplicated key", "application/json", `{"key":"` + key + `","key":"` + key + `"}`, ""},
		{"json: two values", "application/json", `{"key":"` + key + `"}{}`, ""},
		{"json: control character", "application/json", `{"key":"` + key + `","plugin":"a\u0000b"}`, ""},
		{"json: invalid utf-8", "application/json", "{\"key\":\"" + key + "\",\"site\":\"\xff\"}", ""},
		{"json: deep nesting", "application/json", strings.Repeat("[", 100) + strings.Repeat("]", 100), ""},
		{"json: no body, no header", "application/json", ``, ""},
		{"no content type, no body", "", ``, ""},
		{"form: no key", form, `site=example.com`, ""},
		{"form: empty body", form, ``, ""},
		{"form: empty key", form, `key=`, ""},
		{"form: bad escape", form, `key=%zz`, ""},
		{"form: key twice", form, `key=` + key + `&key=` + key, ""},
		{"form: site too long", form, `key=` + key + `&site=` + long, ""},
		{"form: key too long", form, `key=` + long, ""},
		{"form: invalid utf-8", form, `key=` + key + `&wp_version=%ff`, ""},
		{"header and body disagree", "application/json", `{"key":"` + store.NewKey() + `"}`, key},
		{"header with form body disagreeing", form, `key=` + store.NewKey(), key},
		{"header with a too long site", "application/json", `{"site":"` + long + `"}`, key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = []string{"X-API-Key", tt.header}
			}
			res := f.do("POST", "/v1/validate", tt.contentType, tt.body, h...)
			checkFailure(t, res, http.StatusBadRequest, "INVALID_REQUEST")
		})
	}

	// The header and the body may carry the same key, and a JSON body may
	// carry only the site while the header carries the key.
	res := f.doJSON("POST", "/v1/validate", `{"key":"`+key+`"}`, "X-API-Key", key)
	if res.status != 200 {
		t.Errorf("same key in header and body: %d %s", res.status, res.raw)
	}
	res = f.doJSON("POST", "/v1/validate", `{"site":"https://example.com","plugin":"shortpixel","plugin_version":"5.1","wp_version":"6.5","scope":"optimize"}`, "X-API-Key", key)
	if res.status != 200 {
		t.Errorf("key in header, details in JSON: %d %s", res.status, res.raw)
	}
	res = f.do("POST", "/v1/validate", form+"; charset=UTF-8", url.Values{"key": {key}, "site": {"https://example.com/"}, "unknown": {"x"}}.Encode())
	if res.status != 200 {
		t.Errorf("form with charset and an extra field (what wp_remote_post sends): %d %s", res.status, res.raw)
	}
	res = f.do("POST", "/v1/validate", "application/json; charset=utf-8", `{"key":"`+key+`"}`)
	if res.status != 200 {
		t.Errorf("JSON with charset: %d %s", res.status, res.raw)
	}
}

func TestValidateBodyLimit(t *testing.T) {
	f := newValidateFixture(t)
	big := `{"key":"` + f.account.Secret + `","site":"` + strings.Repeat("a", 64<<10) + `"}`
	bigForm := "key=" + f.account.Secret + "&site=" + strings.Repeat("a", 64<<10)
	for _, tt := range []struct {
		name, contentType, body string
		knownLength             bool
	}{
		{"json with Content-Length", "application/json", big, true},
		{"json without Content-Length", "application/json", big, false},
		{"form with Content-Length", "application/x-www-form-urlencoded", bigForm, true},
		{"form without Content-Length", "application/x-www-form-urlencoded", bigForm, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if !tt.knownLength {
				body = io.MultiReader(body) // hides the length: a chunked upload
			}
			req := httptest.NewRequest("POST", "/v1/validate", body)
			req.Header.Set("Content-Type", tt.contentType)
			if tt.knownLength != (req.ContentLength > 0) {
				t.Fatalf("ContentLength = %d", req.ContentLength)
			}
			checkFailure(t, f.serve(req), http.StatusRequestEntityTooLarge, "INVALID_REQUEST")
		})
	}
	// Exactly at the limit is not refused for its size.
	atLimit := `{"key":"` + f.account.Secret + `","site":"`
	atLimit += strings.Repeat("a", 64<<10-len(atLimit)-2) + `"}`
	if len(atLimit) != 64<<10 {
		t.Fatalf("body of %d bytes", len(atLimit))
	}
	res := f.doJSON("POST", "/v1/validate", atLimit)
	checkFailure(t, res, http.StatusBadRequest, "INVALID_REQUEST") // the site is too long, not the body
	if res.status == http.StatusRequestEntityTooLarge {
		t.Error("a body of exactly 64 KiB was refused as too large")
	}
	// Admin and owner routes answer the error shape for a big body.
	checkError(t, f.admin("POST", "/admin/v1/accounts", `{"name":"`+strings.Repeat("a", 70<<10)+`"}`), http.StatusRequestEntityTooLarge, "INVALID_REQUEST")
}

func TestValidateSeesChangesAtOnce(t *testing.T) {
	f := newValidateFixture(t)
	ctx := context.Background()
	key := f.account.Secret
	if res := f.validateJSON(key); res.status != 200 || dig(res.body, "account", "credits") != float64(1200) {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	if _, err := f.db.AddCredits(ctx, store.OperatorActor(""), f.account.Account.ID, 34, ""); err != nil {
		t.Fatal(err)
	}
	if res := f.validateJSON(key); dig(res.body, "account", "credits") != float64(1234) {
		t.Errorf("credits after adding 34: %s", res.raw)
	}
	if _, err := f.db.UpdateAccount(ctx, store.OperatorActor(""), f.account.Account.ID, store.AccountPatch{Status: ptr("suspended")}); err != nil {
		t.Fatal(err)
	}
	checkFailure(t, f.validateHeader(key), 401, "ACCOUNT_SUSPENDED")
	checkFailure(t, f.validateHeader(f.alias), 401, "ACCOUNT_SUSPENDED")

	// The alias expires by the clock alone, to the second.
	if _, err := f.db.UpdateAccount(ctx, store.OperatorActor(""), f.account.Account.ID, store.AccountPatch{Status: ptr("active")}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(f.aliasExpiresAt.Sub(f.clock.Now()) - time.Second)
	if res := f.validateForm(f.alias); res.status != 200 {
		t.Errorf("alias a second before expiry: %d %s", res.status, res.raw)
	}
	f.clock.Add(time.Second)
	checkFailure(t, f.validateForm(f.alias), 401, "EXPIRED")
}

func TestValidateRecordsActivity(t *testing.T) {
	f := newValidateFixture(t)
	res := f.doJSON("POST", "/v1/validate", `{"key":"`+f.account.Secret+`","site":"https://Shop.Example.com/","plugin":"shortpixel","plugin_version":"5.1","wp_version":"6.5"}`)
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	checkFailure(t, f.validateJSON(f.revoked), 401, "REVOKED")
	if err := f.db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys, err := f.db.ListKeys(context.Background(), f.account.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if keys[0].ID != f.account.Key.ID || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(t0) {
		t.Errorf("primary key after a validation: %+v", keys[0])
	}
	for _, k := range keys[1:] {
		if k.LastUsedAt != nil {
			t.Errorf("unused alias %s has last_used_at %v", k.Name, k.LastUsedAt)
		}
	}
}

func TestMethodAndRouteErrors(t *testing.T) {
	e := newEnv(t, testToken)
	for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		res := e.do(m, "/v1/validate", "", "")
		checkError(t, res, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	}
	checkError(t, e.do("DELETE", "/v1/account", "", ""), http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	// "/" redirects to the owner console.
	for _, p := range []string{"/v1", "/v1/nothing", "/v2/validate", "/admin/v1/nothing", "/v1/validate/extra"} {
		res := e.do("GET", p, "", "")
		checkError(t, res, http.StatusNotFound, "NOT_FOUND")
	}
	res := e.do("GET", "/healthz", "", "")
	if res.status != 200 || str(res.body, "status") != "ok" {
		t.Errorf("healthz: %d %s", res.status, res.raw)
	}
	res = e.do("GET", "/readyz", "", "")
	if res.status != 200 || str(res.body, "status") != "ready" {
		t.Errorf("readyz: %d %s", res.status, res.raw)
	}
	if id := res.header.Get("X-Request-ID"); len(id) != 16 {
		t.Errorf("X-Request-ID = %q, want a generated id", id)
	}
	if id := e.do("GET", "/healthz", "", "", "X-Request-ID", "abc-123").header.Get("X-Request-ID"); id != "abc-123" {
		t.Errorf("a well-formed X-Request-ID was not kept: %q", id)
	}
	if id := e.do("GET", "/healthz", "", "", "X-Request-ID", "a b\tc").header.Get("X-Request-ID"); id == "a b\tc" {
		t.Error("a malformed X-Request-ID was echoed")
	}
	// readyz says so when the database is gone.
	e.db.Close()
	res = e.do("GET", "/readyz", "", "")
	if res.status != http.StatusServiceUnavailable || str(res.body, "status") != "unavailable" {
		t.Errorf("readyz with a closed database: %d %s", res.status, res.raw)
	}
}
