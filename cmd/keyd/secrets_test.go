package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keyd/webhooks"
)

// secretsToken is the admin token of the secrets tour; it must not be
// written anywhere.
const secretsToken = "secrets-tour-admin-token-6f1c0b9e2a7d4c58"

// secretsReceiver is a webhook receiver that verifies and keeps what it gets.
type secretsReceiver struct {
	mu       sync.Mutex
	secrets  []string
	verified map[string]bool // message ids
	types    []string
	failures []string
}

func (r *secretsReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	for _, s := range r.secrets {
		if err = webhooks.Verify(s, req.Header, body, time.Now(), 5*time.Minute); err == nil {
			break
		}
	}
	if err != nil {
		r.failures = append(r.failures, err.Error())
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	if !r.verified[id] {
		r.verified[id] = true
		var payload struct{ Type string }
		if err := json.Unmarshal(body, &payload); err != nil {
			r.failures = append(r.failures, err.Error())
		}
		r.types = append(r.types, payload.Type)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *secretsReceiver) trust(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = append(r.secrets, secret)
}

func (r *secretsReceiver) got(typ string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.types {
		if t == typ {
			return true
		}
	}
	return false
}

// secretsTour runs keyd serve with debug logs in the given format, takes it
// through everything that hands out a secret, and returns those secrets,
// the database path and what keyd printed. It checks file modes while keyd
// runs (the WAL and shared-memory files exist only then) and keeps a copy
// of those files' contents.
func secretsTour(t *testing.T, format string) (secrets []string, dbPath string, written map[string][]byte) {
	t.Helper()
	dbPath = filepath.Join(t.TempDir(), "keyd.db")
	env := map[string]string{"KEYD_ADMIN_TOKEN": secretsToken}
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", dbPath, "--log-level", "debug", "--log-format", format,
			"--webhook-allow-private", "--flush-schedule", "@every 1s"}, func(k string) string { return env[k] }, stdout, stderr)
	}()
	listening := regexp.MustCompile(`keyd listening on (http://127\.0\.0\.1:\d+)\n`)
	var base string
	waitFor(t, 60*time.Second, "keyd to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve returned before listening: %v\n%s", err, stderr.String())
		default:
		}
		if m := listening.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		return base != ""
	})
	c := &client{t: t, base: base, http: &http.Client{Timeout: 30 * time.Second}}
	keep := func(s string) string {
		if s == "" {
			t.Fatal("the tour expected a secret and got none")
		}
		secrets = append(secrets, s)
		return s
	}
	mustStatus := func(want, got int, out map[string]any, what string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: %d %v", what, got, out)
		}
	}
	field := func(out map[string]any, path ...string) string {
		var cur any = out
		for _, p := range path {
			m, _ := cur.(map[string]any)
			cur = m[p]
		}
		s, _ := cur.(string)
		return s
	}

	status, out := c.admin2(secretsToken, "POST", "/admin/v1/accounts", `{"name":"Tour","email":"tour@example.com","plan":"pro","credits":1000}`)
	mustStatus(201, status, out, "create account")
	key := keep(field(out, "key"))
	accountID := field(out, "account", "id")
	if code := c.code(key); code != "VALID" {
		t.Fatalf("validate the new key: %s", code)
	}

	recv := &secretsReceiver{verified: map[string]bool{}}
	hooks := httptest.NewServer(recv)
	defer hooks.Close()
	status, out = c.call("POST", "/v1/webhooks", `{"url":"`+hooks.URL+`/hook","events":["*"]}`, "X-API-Key", key)
	mustStatus(201, status, out, "register a webhook")
	secret := keep(field(out, "secret"))
	recv.trust(secret)
	webhookID := field(out, "webhook", "id")

	status, out = c.call("POST", "/v1/aliases", `{"name":"Client site","ttl":"7d","allowed_sites":["example.com"]}`, "X-API-Key", key)
	mustStatus(201, status, out, "create an alias")
	alias := keep(field(out, "key"))
	status, out = c.call("POST", "/v1/aliases", `{"name":"Second"}`, "Authorization", "Bearer "+key)
	mustStatus(201, status, out, "create a second alias")
	second := keep(field(out, "key"))
	secondID := field(out, "alias", "id")
	if code := c.code(alias); code != "VALID" {
		t.Fatalf("validate the alias: %s", code)
	}
	status, out = c.call("POST", "/v1/usage", `{"units":3,"site":"https://example.com/","idempotency_key":"order-1"}`, "X-API-Key", alias)
	mustStatus(200, status, out, "spend with the alias")
	status, out = c.call("POST", "/v1/usage", `{"units":2}`, "X-API-Key", second)
	mustStatus(200, status, out, "spend with the second alias")

	status, out = c.call("POST", "/v1/account/reset-key", `{"grace_period":"1h"}`, "X-API-Key", key)
	mustStatus(200, status, out, "reset with grace")
	key = keep(field(out, "key"))
	status, out = c.call("POST", "/v1/account/reset-key", `{}`, "X-API-Key", key)
	mustStatus(200, status, out, "reset without grace")
	key = keep(field(out, "key"))
	if code := c.code(key); code != "VALID" {
		t.Fatalf("validate the reset key: %s", code)
	}

	status, out = c.call("POST", "/v1/subaccounts", `{"name":"Client Co","email":"it@client.example","credits":100}`, "X-API-Key", key)
	mustStatus(201, status, out, "create a subaccount")
	subKey := keep(field(out, "key"))
	subID := field(out, "account", "id")
	if code := c.code(subKey); code != "VALID" {
		t.Fatalf("validate the subaccount's key: %s", code)
	}
	status, out = c.call("POST", "/v1/subaccounts/"+subID+"/credits", `{"amount":-10}`, "X-API-Key", key)
	mustStatus(200, status, out, "reclaim credits")

	for _, step := range []string{"deactivate", "reactivate"} {
		status, out = c.call("POST", "/v1/aliases/"+secondID+"/"+step, "", "X-API-Key", key)
		mustStatus(200, status, out, step)
	}
	status, out = c.call("DELETE", "/v1/aliases/"+secondID, "", "X-API-Key", key)
	mustStatus(204, status, out, "delete an alias")

	status, out = c.call("POST", "/v1/webhooks/"+webhookID+"/rotate-secret", "", "X-API-Key", key)
	mustStatus(200, status, out, "rotate the secret")
	rotated := keep(field(out, "secret"))
	recv.trust(rotated)
	status, out = c.call("POST", "/v1/webhooks/"+webhookID+"/test", "", "X-API-Key", key)
	mustStatus(202, status, out, "send a test message")

	for _, p := range []string{"/v1/account", "/v1/keys", "/v1/usage", "/v1/audit", "/v1/subaccounts", "/v1/webhooks/" + webhookID + "/deliveries"} {
		status, out = c.call("GET", p, "", "X-API-Key", key)
		mustStatus(200, status, out, "GET "+p)
	}
	status, out = c.admin2(secretsToken, "GET", "/admin/v1/accounts/"+accountID, "")
	mustStatus(200, status, out, "admin get account")
	if status, _ := c.admin2(secretsToken+"x", "GET", "/admin/v1/plans", ""); status != http.StatusUnauthorized {
		t.Errorf("a wrong admin token: %d", status)
	}

	// Deliveries signed with both secrets reach the receiver.
	waitFor(t, 60*time.Second, "the webhook deliveries", func() bool {
		return recv.got("key.reset") && recv.got("alias.created") && recv.got("alias.deleted") && recv.got("subaccount.created") && recv.got("webhook.test")
	})
	recv.mu.Lock()
	if len(recv.failures) > 0 {
		t.Errorf("deliveries failed verification: %q", recv.failures)
	}
	recv.mu.Unlock()
	written = map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm", ".key"} {
		p := dbPath + suffix
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("while keyd runs: %v", err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		written["running "+filepath.Base(p)] = b
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60s")
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(dbPath + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		written["stopped "+filepath.Base(dbPath+suffix)] = b
	}
	written[format+" log"] = []byte(stderr.String())
	written["stdout"] = []byte(stdout.String())
	if !strings.Contains(stderr.String(), "level=DEBUG") && !strings.Contains(stderr.String(), `"level":"DEBUG"`) {
		t.Errorf("no debug lines in the %s log:\n%.2000s", format, stderr.String())
	}
	return secrets, dbPath, written
}

// admin2 calls the admin API with the given token.
func (c *client) admin2(token, method, path, body string) (int, map[string]any) {
	c.t.Helper()
	return c.call(method, path, body, "Authorization", "Bearer "+token)
}

// secretForms are the ways a secret could be written: as given and, for a
// webhook secret, its base64 body and the raw key bytes it decodes to.
func secretForms(t *testing.T, s string) map[string][]byte {
	forms := map[string][]byte{s: []byte(s)}
	if body, ok := strings.CutPrefix(s, "whsec_"); ok {
		forms[body] = []byte(body)
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil || len(raw) < 16 {
			t.Fatalf("webhook secret %q does not hold base64 key bytes", s)
		}
		forms["the raw key of "+s] = raw
	}
	return forms
}

// TestNoSecretIsWritten takes keyd serve, with debug logs in JSON and in
// text, through accounts, aliases, resets, validations, usage, subaccounts,
// a webhook with deliveries to a real receiver and a secret rotation, then
// searches everything keyd wrote (the database, its WAL and shared-memory
// files while running and after, the logs, stdout) for every key it handed
// out, every webhook secret in each form, and the admin token. It also
// checks that the database files and the secret key file are mode 0600.
func TestNoSecretIsWritten(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			secrets, dbPath, written := secretsTour(t, format)
			if len(secrets) != 8 {
				t.Fatalf("the tour handed out %d secrets, want 8", len(secrets))
			}
			secrets = append(secrets, secretsToken)
			for _, s := range secrets {
				for name, form := range secretForms(t, s) {
					for file, content := range written {
						if bytes.Contains(content, form) {
							t.Errorf("%s holds %q", file, name)
						}
					}
				}
			}
			// The key hints are fine; make sure the search would see them,
			// so that an empty file cannot pass for a clean one.
			stored := append(append(bytes.Clone(written["stopped keyd.db"]), written["stopped keyd.db-wal"]...), written["running keyd.db-wal"]...)
			if !bytes.Contains(stored, []byte(secrets[0][16:])) {
				t.Errorf("the database does not hold the first key's hint; is it the right file?")
			}
			if fi, err := os.Stat(dbPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("after shutdown the database is %v, %v; want mode 0600", fi, err)
			}
		})
	}
}

// TestAdminTokenLength checks that keyd serve refuses an admin token under
// 32 characters, from the flag, the environment or a file, and accepts one
// of exactly 32.
func TestAdminTokenLength(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short, exact := strings.Repeat("s", minAdminTokenLength-1), strings.Repeat("e", minAdminTokenLength)
	for _, tc := range []struct {
		name string
		cfg  serveConfig
		ok   bool
	}{
		{"31 characters", serveConfig{adminToken: short}, false},
		{"32 characters", serveConfig{adminToken: exact}, true},
		{"none", serveConfig{}, true},
		{"31 characters in a file", serveConfig{adminTokenFile: file("short", short+"\n")}, false},
		{"31 characters and spaces in a file", serveConfig{adminTokenFile: file("padded", "  "+short+"  \n")}, false},
		{"32 characters in a file", serveConfig{adminTokenFile: file("exact", exact+"\n")}, true},
		{"both a token and a file", serveConfig{adminToken: exact, adminTokenFile: file("both", exact)}, false},
	} {
		token, err := adminToken(tc.cfg)
		if tc.ok != (err == nil) {
			t.Errorf("%s: token %q, error %v; want ok=%v", tc.name, token, err, tc.ok)
		}
		if err != nil && !errors.As(err, new(usageError)) {
			t.Errorf("%s: %v is not a usage error (exit status 2)", tc.name, err)
		}
	}

	// keyd serve itself stops before opening anything.
	db := filepath.Join(dir, "never.db")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--db", db},
		func(k string) string {
			if k == "KEYD_ADMIN_TOKEN" {
				return short
			}
			return ""
		}, &stdout, &stderr)
	if !errors.As(err, new(usageError)) {
		t.Fatalf("serve with a 31-character KEYD_ADMIN_TOKEN: %v", err)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve refused the token but created the database: %v", err)
	}
	if strings.Contains(stdout.String()+stderr.String()+err.Error(), short) {
		t.Errorf("the refusal repeats the token")
	}
}
