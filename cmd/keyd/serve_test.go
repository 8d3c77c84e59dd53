package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keyd/store"
)

// lockedBuffer collects what the server writes from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const e2eToken = "e2e-admin-token-0123456789abcdef0123456789abcdef"

// waitFor polls cond every 20ms until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type client struct {
	t    *testing.T
	base string
	http *http.Client
}

// call sends a JSON request and decodes the JSON answer.
func (c *client) call(method, path, body string, headers ...string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: %d, body is not JSON: %q", method, path, res.StatusCode, raw)
		}
	}
	if res.StatusCode >= 500 {
		c.t.Errorf("%s %s answered %d: %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode, out
}

func (c *client) admin(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	return c.call(method, path, body, "Authorization", "Bearer "+e2eToken)
}

// validate posts a key as WordPress does (a form) and returns the code.
func (c *client) validate(key string) (int, map[string]any) {
	c.t.Helper()
	res, err := c.http.Post(c.base+"/v1/validate", "application/x-www-form-urlencoded", strings.NewReader("key="+key+"&site=https%3A%2F%2Fexample.com"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		c.t.Fatalf("validate: %d, body is not JSON: %v", res.StatusCode, err)
	}
	return res.StatusCode, out
}

func (c *client) code(key string) string {
	c.t.Helper()
	_, out := c.validate(key)
	s, _ := out["code"].(string)
	return s
}

func TestServeEndToEnd(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "keyd.db")
	env := map[string]string{"KEYD_ADMIN_TOKEN": e2eToken}
	getenv := func(k string) string { return env[k] }
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", dbPath, "--flush-schedule", "@every 1s"}, getenv, stdout, stderr)
	}()

	// The address is on stdout once the server listens.
	listening := regexp.MustCompile(`keyd listening on (http://127\.0\.0\.1:\d+)\n`)
	var base string
	deadline := time.Now().Add(60 * time.Second)
	for base == "" {
		if m := listening.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before listening: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not print its address within 60s; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := &client{t: t, base: base, http: &http.Client{Timeout: 30 * time.Second}}
	waitFor(t, 30*time.Second, "/healthz", func() bool {
		res, err := c.http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	if status, out := c.call("GET", "/readyz", ""); status != 200 || out["status"] != "ready" {
		t.Errorf("readyz: %d %v", status, out)
	}

	// Create an account with the admin API and validate its key.
	status, out := c.admin("POST", "/admin/v1/accounts", `{"name":"Acme","email":"ops@acme.test","plan":"pro","credits":1200}`)
	if status != http.StatusCreated {
		t.Fatalf("create account: %d %v", status, out)
	}
	key, _ := out["key"].(string)
	accountID, _ := out["account"].(map[string]any)["id"].(string)
	if !store.WellFormedKey(key) || accountID == "" {
		t.Fatalf("create account answered %v", out)
	}
	if status, out := c.validate(key); status != 200 || out["code"] != "VALID" || out["valid"] != true {
		t.Fatalf("validate new key: %d %v", status, out)
	}
	// The ShortPixel-style check is served by default.
	status, out = c.call("GET", "/v2/api-status.php?key="+key+"&host=acme.test", "")
	if st, _ := out["Status"].(map[string]any); status != 200 || st["Code"] != 2.0 {
		t.Errorf("api-status.php with a new key: %d %v", status, out)
	}
	if status, _ := c.admin("GET", "/admin/v1/accounts/"+accountID, ""); status != 200 {
		t.Errorf("admin get: %d", status)
	}
	if status, _ := c.call("GET", "/admin/v1/plans", "", "Authorization", "Bearer wrong"); status != http.StatusUnauthorized {
		t.Errorf("admin API with a wrong token: %d", status)
	}

	// Reset without grace: the old key is revoked at once.
	reset := func(body string) (string, time.Time) {
		t.Helper()
		status, out := c.call("POST", "/v1/account/reset-key", body, "X-API-Key", key)
		if status != 200 {
			t.Fatalf("reset-key %s: %d %v", body, status, out)
		}
		prev, _ := out["previous"].(map[string]any)
		vu, err := time.Parse(time.RFC3339, prev["valid_until"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return out["key"].(string), vu
	}
	old := key
	key, _ = reset("")
	if got := c.code(old); got != "REVOKED" {
		t.Errorf("old key right after a reset without grace: %s, want REVOKED", got)
	}
	if got := c.code(key); got != "VALID" {
		t.Errorf("new key: %s", got)
	}

	// Reset with a 2s grace: both keys work until valid_until, then the old
	// one is revoked. Each answer is judged against the time it was asked
	// in, so a slow machine cannot make this fail.
	old = key
	key, validUntil := reset(`{"grace_period":"2s"}`)
	sawValid := false
	waitFor(t, 60*time.Second, "the old key to be revoked after its grace", func() bool {
		before := time.Now()
		got := c.code(old)
		after := time.Now()
		switch got {
		case "VALID":
			if !before.Before(validUntil) {
				t.Fatalf("old key VALID when asked at %v, after valid_until %v", before, validUntil)
			}
			sawValid = true
			return false
		case "REVOKED":
			if after.Before(validUntil) {
				t.Fatalf("old key REVOKED at %v, before valid_until %v", after, validUntil)
			}
			return true
		}
		t.Fatalf("old key during grace answered %s", got)
		return false
	})
	if !sawValid {
		t.Log("the grace period ended before the old key was first checked")
	}
	if got := c.code(key); got != "VALID" {
		t.Errorf("new key after the grace period: %s", got)
	}

	// A change made by the operator's command line while keyd serves is
	// picked up from the event log.
	var cliOut, cliErr bytes.Buffer
	if err := run(context.Background(), []string{"credits", "add", "--db", dbPath, "--account", accountID, "--amount", "34"},
		func(string) string { return "" }, &cliOut, &cliErr); err != nil {
		t.Fatalf("credits add while serving: %v\n%s", err, cliErr.String())
	}
	waitFor(t, 30*time.Second, "the credits added from the command line", func() bool {
		_, out := c.validate(key)
		acc, _ := out["account"].(map[string]any)
		return acc != nil && acc["credits"] == float64(1234)
	})

	// Suspend the account: its key answers ACCOUNT_SUSPENDED.
	if status, out := c.admin("PATCH", "/admin/v1/accounts/"+accountID, `{"status":"suspended"}`); status != 200 || out["status"] != "suspended" {
		t.Fatalf("suspend: %d %v", status, out)
	}
	if status, out := c.validate(key); status != 401 || out["code"] != "ACCOUNT_SUSPENDED" {
		t.Errorf("suspended account's key: %d %v", status, out)
	}

	// Graceful shutdown returns nil and writes what was pending.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after shutdown\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not return within 60s of its context ending")
	}
	if _, err := c.http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after shutdown")
	}
	db, err := store.Open(context.Background(), dbPath, store.WithoutIndex())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := db.ListKeys(context.Background(), accountID)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("%d keys after two resets, want 3", len(keys))
	}
	for _, k := range keys {
		if k.LastUsedAt == nil {
			t.Errorf("key %s has no last use after validations and shutdown", k.ID)
		}
	}
	if strings.Contains(stderr.String(), key) || strings.Contains(stdout.String(), key) {
		t.Error("the server's output holds a key")
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", stderr.String())
	}
	// At the default level the validations get no line each; the summary
	// written at shutdown counts them.
	if !strings.Contains(stderr.String(), `msg=requests `) || !strings.Contains(stderr.String(), `"POST /v1/validate"="200:`) {
		t.Errorf("no request summary at shutdown:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "path=/v1/validate status=200") {
		t.Errorf("a successful validation was logged at info:\n%s", stderr.String())
	}
}
