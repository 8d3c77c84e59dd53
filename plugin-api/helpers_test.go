package pluginapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pluginapi "keyd/plugin-api"
	"keyd/store"
	"keyd/store/storetest"
)

// testToken is the admin token the tests configure.
const testToken = "test-admin-token-0123456789abcdef0123456789"

// t0 is where the fake clock starts: a whole second.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// fakeClock is a clock tests move by hand; safe for concurrent use.
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

// syncBuffer is a bytes.Buffer safe for concurrent writers, for logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is the real router over a real store: a new database of the
// engine the tests run on (storetest).
type testEnv struct {
	tb    testing.TB
	dsn   string
	db    *store.DB
	h     http.Handler
	clock *fakeClock
	token string
	log   *syncBuffer
}

// newEnv opens a new store and builds the router; token "" turns the admin
// API off.
func newEnv(tb testing.TB, token string) *testEnv {
	tb.Helper()
	return newEnvAt(tb, token, storetest.DSN(tb))
}

// newEnvAt is newEnv on the database at dsn, for the tests that need a
// SQLite file of their own to look into.
func newEnvAt(tb testing.TB, token, dsn string) *testEnv {
	tb.Helper()
	e := &testEnv{tb: tb, dsn: dsn, clock: &fakeClock{t: t0}, token: token, log: &syncBuffer{}}
	e.open()
	return e
}

// open (re)opens the store and rebuilds the router on it.
func (e *testEnv) open() {
	e.tb.Helper()
	db, err := store.Open(context.Background(), e.dsn, pluginapi.StoreOptions(e.dsn, store.WithClock(e.clock.Now))...)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { db.Close() })
	e.db = db
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.h, err = pluginapi.New(db, pluginapi.Config{AdminToken: e.token, Logger: logger, Now: e.clock.Now})
	if err != nil {
		e.tb.Fatal(err)
	}
}

// reopen closes the store and opens it again, so that rows written with SQL
// behind its back are loaded into the key index.
func (e *testEnv) reopen() {
	e.tb.Helper()
	if err := e.db.Close(); err != nil {
		e.tb.Fatal(err)
	}
	e.open()
}

// response is a recorded answer with its JSON body decoded.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// serve sends req through the router. No request of the tests may answer 500.
func (e *testEnv) serve(req *http.Request) response {
	e.tb.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := response{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	// Only readiness may report the server itself unavailable.
	if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && req.URL.Path == "/readyz") {
		e.tb.Errorf("%s %s answered %d: %s", req.Method, req.URL.Path, rec.Code, res.raw)
	}
	if res.raw != "" {
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			e.tb.Errorf("%s %s: Content-Type %q, want application/json", req.Method, req.URL.Path, ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			e.tb.Errorf("%s %s: body is not a JSON object: %v: %q", req.Method, req.URL.Path, err, res.raw)
		}
	}
	return res
}

// do sends a request with a body of the given content type ("" for none)
// and extra headers given as name, value pairs.
func (e *testEnv) do(method, path, contentType, body string, headers ...string) response {
	e.tb.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.serve(req)
}

func (e *testEnv) doJSON(method, path, body string, headers ...string) response {
	e.tb.Helper()
	return e.do(method, path, "application/json", body, headers...)
}

// admin calls the admin API with the configured token.
func (e *testEnv) admin(method, path, body string) response {
	e.tb.Helper()
	return e.doJSON(method, path, body, "Authorization", "Bearer "+e.token)
}

// createAccount creates an account through the admin API and returns its id
// and primary key.
func (e *testEnv) createAccount(name, plan string, credits int64) (string, string) {
	e.tb.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "email": strings.ToLower(strings.ReplaceAll(name, " ", "")) + "@example.com", "plan": plan, "credits": credits})
	res := e.admin("POST", "/admin/v1/accounts", string(body))
	if res.status != http.StatusCreated {
		e.tb.Fatalf("create account: %d %s", res.status, res.raw)
	}
	return str(res.body, "account", "id"), str(res.body, "key")
}

// createStoreAccount creates an account directly in the store.
func (e *testEnv) createStoreAccount(name, plan string, credits int64) store.Created {
	e.tb.Helper()
	c, err := e.db.CreateAccount(context.Background(), store.OperatorActor(""),
		store.NewAccount{Name: name, Email: "owner@example.com", Plan: plan, Credits: credits})
	if err != nil {
		e.tb.Fatal(err)
	}
	return c
}

// validateJSON, validateForm and validateHeader send a key to /v1/validate
// the three ways the contract allows.
func (e *testEnv) validateJSON(key string) response {
	e.tb.Helper()
	b, _ := json.Marshal(map[string]string{"key": key})
	return e.doJSON("POST", "/v1/validate", string(b))
}

func (e *testEnv) validateForm(key string) response {
	e.tb.Helper()
	return e.do("POST", "/v1/validate", "application/x-www-form-urlencoded", url.Values{"key": {key}}.Encode())
}

func (e *testEnv) validateHeader(key string) response {
	e.tb.Helper()
	return e.do("POST", "/v1/validate", "", "", "X-API-Key", key)
}

// insertKeyRow writes a key row with SQL through a second connection, as a
// later alias API would. It returns the key id. The store must be reopened
// for its index to see the row.
func insertKeyRow(tb testing.TB, dsn, accountID, typ, name, status, secret string, expiresAt *time.Time, scopes string) string {
	tb.Helper()
	conn, err := store.OpenSQL(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	var b [8]byte
	rand.Read(b[:])
	id := "key_" + hex.EncodeToString(b[:])
	h := store.HashKey(secret)
	var exp any
	if expiresAt != nil {
		exp = expiresAt.Unix()
	}
	_, err = conn.Exec(`INSERT INTO keys (id, account_id, type, name, name_fold, hint, hash, status, scopes, allowed_sites,
		expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)`,
		id, accountID, typ, name, strings.ToLower(name), store.KeyHint(secret), h[:], status, scopes, exp, t0.Unix(), t0.Unix())
	if err != nil {
		tb.Fatalf("insert key row: %v", err)
	}
	return id
}

// str digs a string out of a decoded JSON object; "" when absent.
func str(m map[string]any, path ...string) string {
	v, _ := dig(m, path...).(string)
	return v
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}

// keysOf is an object's field names, sorted.
func keysOf(v any) []string {
	obj, _ := v.(map[string]any)
	out := make([]string, 0, len(obj))
	for k := range obj {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkFields fails unless the object has exactly these fields.
func checkFields(tb testing.TB, what string, v any, want ...string) {
	tb.Helper()
	sort.Strings(want)
	if got := keysOf(v); strings.Join(got, ",") != strings.Join(want, ",") {
		tb.Errorf("%s has fields %v, want %v", what, got, want)
	}
}

// checkError checks the owner/admin error shape.
func checkError(tb testing.TB, res response, status int, code string) {
	tb.Helper()
	if res.status != status {
		tb.Errorf("status %d, want %d (%s): %s", res.status, status, code, res.raw)
		return
	}
	checkFields(tb, "error body", res.body, "error")
	e, _ := res.body["error"].(map[string]any)
	if e["code"] != code {
		tb.Errorf("error code %v, want %s: %s", e["code"], code, res.raw)
	}
	if msg, _ := e["message"].(string); msg == "" {
		tb.Errorf("error without a message: %s", res.raw)
	}
	for k := range e {
		if k != "code" && k != "message" && k != "fields" {
			tb.Errorf("error body has unexpected field %q: %s", k, res.raw)
		}
	}
}

// checkFailure checks the validate failure shape.
func checkFailure(tb testing.TB, res response, status int, code string) {
	tb.Helper()
	if res.status != status || str(res.body, "code") != code {
		tb.Errorf("got %d %s, want %d %s: %s", res.status, str(res.body, "code"), status, code, res.raw)
		return
	}
	if code == "EXPIRED" {
		checkFields(tb, "EXPIRED body", res.body, "valid", "code", "message", "expires_at")
	} else {
		checkFields(tb, code+" body", res.body, "valid", "code", "message")
	}
	if res.body["valid"] != false {
		tb.Errorf("failure with valid = %v", res.body["valid"])
	}
	if str(res.body, "message") == "" {
		tb.Errorf("failure without a message: %s", res.raw)
	}
}

// openSQL opens a second, independent connection to the database at dsn,
// closed when tb ends; it takes the store's SQL on either engine.
func openSQL(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	conn, err := store.OpenSQL(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}
