package pluginapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"keyd/store"
	"keyd/webhooks"
)

// lockedBuffer collects log output written from request goroutines.
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

// useConfig rebuilds the handler over the same store with other settings.
func (a *ownerAPI) useConfig(cfg Config) {
	a.t.Helper()
	cfg.Now, cfg.Scopes = a.clock, a.scopes
	h, err := New(a.db, cfg)
	if err != nil {
		a.t.Fatal(err)
	}
	a.handler = h
}

func fields(out map[string]any) map[string]any {
	e, _ := out["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	return f
}

func TestWebhookURLsOnPrivateAddressesAreRefused(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.account("pro")
	refused := []string{
		"http://127.0.0.1:8080/hook",
		"http://10.1.2.3/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://192.168.0.10/",
		"http://[::1]/hook",
		"http://[::ffff:10.0.0.1]/",
		"http://localhost:9000/",
		"ftp://hooks.example.com/",
		"https://user:pass@hooks.example.com/",
		"https://hooks.example.com/" + strings.Repeat("a", webhooks.MaxURLLength),
		"hooks.example.com/no-scheme",
	}
	for _, u := range refused {
		code, out := a.do("POST", "/v1/webhooks", key, map[string]any{"url": u, "events": []string{"*"}})
		if code != http.StatusBadRequest || errorCode(out) != codeInvalidRequest || fields(out)["url"] == nil {
			t.Errorf("POST url %.60q: %d %v, want 400 INVALID_REQUEST naming url", u, code, out)
		}
	}
	code, out := a.do("POST", "/v1/webhooks", key, map[string]any{"url": "https://hooks.example.com/keyd", "events": []string{"*"}})
	if code != http.StatusCreated {
		t.Fatalf("public URL: %d %v", code, out)
	}
	id := out["webhook"].(map[string]any)["id"].(string)
	if code, out := a.do("PATCH", "/v1/webhooks/"+id, key, map[string]any{"url": "http://10.0.0.7/"}); code != http.StatusBadRequest || fields(out)["url"] == nil {
		t.Fatalf("PATCH to a private URL: %d %v", code, out)
	}

	// The operator may allow private receivers (development and tests).
	a.useConfig(Config{AllowPrivateWebhooks: true})
	for _, u := range []string{"http://127.0.0.1:8080/hook", "http://10.1.2.3/hook"} {
		if code, out := a.do("POST", "/v1/webhooks", key, map[string]any{"url": u, "events": []string{"*"}}); code != http.StatusCreated {
			t.Errorf("with private receivers allowed, POST %s: %d %v", u, code, out)
		}
	}
	// Credentials and other schemes stay refused.
	if code, _ := a.do("POST", "/v1/webhooks", key, map[string]any{"url": "http://u:p@127.0.0.1/", "events": []string{"*"}}); code != http.StatusBadRequest {
		t.Errorf("credentials with private allowed: %d", code)
	}
}

func TestWebhookEndpointsThroughTheAPI(t *testing.T) {
	a := newOwnerAPI(t)
	var logs lockedBuffer
	a.useConfig(Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	_, key := a.account("pro")
	_, otherKey := a.account("pro")
	_, aliasKey := a.alias(key, map[string]any{"name": "client"})

	// Create: the secret is shown once.
	code, out := a.do("POST", "/v1/webhooks", key, map[string]any{
		"url": "https://hooks.example.com/keyd?token=abc", "events": []string{"key.reset", "alias.*"}, "description": "site A"})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	secret, _ := out["secret"].(string)
	if err := webhooks.ValidateSecret(secret); err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q: %v", secret, err)
	}
	hook := out["webhook"].(map[string]any)
	id := hook["id"].(string)
	if !strings.HasPrefix(id, "wh_") || hook["enabled"] != true || hook["description"] != "site A" ||
		fmt.Sprint(hook["events"]) != "[key.reset alias.*]" || hook["url"] != "https://hooks.example.com/keyd?token=abc" {
		t.Fatalf("webhook = %v", hook)
	}

	// Reading it back never shows the secret.
	code, out = a.do("GET", "/v1/webhooks", key, nil)
	if list, _ := out["webhooks"].([]any); code != http.StatusOK || len(list) != 1 {
		t.Fatalf("list: %d %v", code, out)
	}
	listed, _ := json.Marshal(out)
	code, out = a.do("GET", "/v1/webhooks/"+id, key, nil)
	got, _ := json.Marshal(out)
	if code != http.StatusOK || out["id"] != id {
		t.Fatalf("get: %d %v", code, out)
	}
	enc := strings.TrimPrefix(secret, "whsec_")
	if strings.Contains(string(listed), enc) || strings.Contains(string(got), enc) {
		t.Fatal("GET shows the secret")
	}

	// Events are required; bad patterns and unknown fields are refused.
	for _, body := range []map[string]any{
		{"url": "https://c.example.com/"},
		{"url": "https://c.example.com/", "events": []string{"alias.creatd"}},
		{"url": "https://c.example.com/", "events": []string{}},
		{"url": "https://c.example.com/", "events": nil},
		{"url": "https://c.example.com/", "events": []string{"account.created"}},
	} {
		if code, out := a.do("POST", "/v1/webhooks", key, body); code != http.StatusBadRequest || fields(out)["events"] == nil {
			t.Errorf("create with events %v: %d %v", body["events"], code, out)
		}
	}
	if code, out := a.do("POST", "/v1/webhooks", key, map[string]any{"url": "https://c.example.com/", "events": []string{"*"}, "secret": "mine"}); code != http.StatusBadRequest || fields(out)["secret"] == nil {
		t.Errorf("create with an unknown field: %d %v", code, out)
	}

	// Patch.
	code, out = a.do("PATCH", "/v1/webhooks/"+id, key, map[string]any{"events": []string{"*"}, "enabled": false, "description": "off"})
	if code != http.StatusOK || out["enabled"] != false || out["disabled_reason"] != store.DisabledByOwner || fmt.Sprint(out["events"]) != "[*]" {
		t.Fatalf("patch: %d %v", code, out)
	}
	if code, out := a.do("PATCH", "/v1/webhooks/"+id, key, map[string]any{"events": nil}); code != http.StatusBadRequest {
		t.Fatalf("patch events null: %d %v", code, out)
	}
	// A disabled endpoint cannot recover messages.
	if code, out := a.do("POST", "/v1/webhooks/"+id+"/recover", key, map[string]any{"since": a.now.Add(-time.Hour)}); code != http.StatusBadRequest {
		t.Fatalf("recover on a disabled webhook: %d %v", code, out)
	}
	if code, out := a.do("PATCH", "/v1/webhooks/"+id, key, map[string]any{"enabled": true}); code != http.StatusOK || out["enabled"] != true || out["disabled_reason"] != nil {
		t.Fatalf("re-enable: %d %v", code, out)
	}

	// Rotate: a new secret, shown once; the old one signs for 24h more.
	code, out = a.do("POST", "/v1/webhooks/"+id+"/rotate-secret", key, nil)
	newSecret, _ := out["secret"].(string)
	if code != http.StatusOK || webhooks.ValidateSecret(newSecret) != nil || newSecret == secret {
		t.Fatalf("rotate: %d %v", code, out)
	}
	if exp := out["webhook"].(map[string]any)["previous_secret_expires_at"]; exp != a.now.Add(24*time.Hour).Format(time.RFC3339) {
		t.Fatalf("previous_secret_expires_at = %v", exp)
	}

	// Test: one message to this endpoint.
	code, out = a.do("POST", "/v1/webhooks/"+id+"/test", key, nil)
	msg, _ := out["message"].(map[string]any)
	if code != http.StatusAccepted || msg["type"] != "webhook.test" || msg["status"] != "pending" || msg["webhook_id"] != id {
		t.Fatalf("test: %d %v", code, out)
	}
	msgID := msg["id"].(string)
	payload := msg["payload"].(map[string]any)
	if payload["type"] != "webhook.test" || payload["data"].(map[string]any)["webhook_id"] != id {
		t.Fatalf("test payload %v", payload)
	}
	a.do("POST", "/v1/webhooks/"+id+"/test", key, map[string]any{})

	// Deliveries: newest first, paged.
	code, out = a.do("GET", "/v1/webhooks/"+id+"/deliveries?limit=1", key, nil)
	page, _ := out["messages"].([]any)
	if code != http.StatusOK || len(page) != 1 || out["next_before"] == nil {
		t.Fatalf("deliveries page 1: %d %v", code, out)
	}
	code, out = a.do("GET", "/v1/webhooks/"+id+"/deliveries?limit=1&before="+out["next_before"].(string), key, nil)
	page, _ = out["messages"].([]any)
	if code != http.StatusOK || len(page) != 1 || page[0].(map[string]any)["id"] != msgID {
		t.Fatalf("deliveries page 2: %d %v", code, out)
	}
	if att, ok := page[0].(map[string]any)["attempts"].([]any); !ok || len(att) != 0 {
		t.Fatalf("attempts of an unsent message: %v", page[0])
	}
	if code, out := a.do("GET", "/v1/webhooks/"+id+"/deliveries?status=failed", key, nil); code != http.StatusOK || len(out["messages"].([]any)) != 0 {
		t.Fatalf("failed deliveries: %d %v", code, out)
	}
	for _, q := range []string{"limit=0", "limit=x", "status=lost", "before=msg_nope"} {
		if code, _ := a.do("GET", "/v1/webhooks/"+id+"/deliveries?"+q, key, nil); code != http.StatusBadRequest {
			t.Errorf("deliveries?%s: %d, want 400", q, code)
		}
	}

	// Resend and recover.
	if code, out := a.do("POST", "/v1/messages/"+msgID+"/resend", key, nil); code != http.StatusAccepted || out["message"].(map[string]any)["status"] != "pending" {
		t.Fatalf("resend: %d %v", code, out)
	}
	if code, out := a.do("POST", "/v1/webhooks/"+id+"/recover", key, map[string]any{"since": a.now.Add(-time.Hour)}); code != http.StatusAccepted || out["recovered"] != 0.0 {
		t.Fatalf("recover: %d %v", code, out)
	}
	if code, out := a.do("POST", "/v1/webhooks/"+id+"/recover", key, map[string]any{}); code != http.StatusBadRequest || fields(out)["since"] == nil {
		t.Fatalf("recover without since: %d %v", code, out)
	}

	// Another account sees none of it; an alias manages nothing.
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/webhooks/" + id}, {"PATCH", "/v1/webhooks/" + id}, {"DELETE", "/v1/webhooks/" + id},
		{"POST", "/v1/webhooks/" + id + "/rotate-secret"}, {"POST", "/v1/webhooks/" + id + "/test"},
		{"GET", "/v1/webhooks/" + id + "/deliveries"}, {"POST", "/v1/webhooks/" + id + "/recover"},
		{"POST", "/v1/messages/" + msgID + "/resend"},
	} {
		var body any
		switch r.method + " " + r.path[strings.LastIndex(r.path, "/"):] {
		case "PATCH /" + id:
			body = map[string]any{"enabled": false}
		case "POST /recover":
			body = map[string]any{"since": a.now.Add(-time.Hour)}
		}
		if code, out := a.do(r.method, r.path, otherKey, body); code != http.StatusNotFound || errorCode(out) != codeNotFound {
			t.Errorf("%s %s by another account: %d %v", r.method, r.path, code, out)
		}
		if code, out := a.do(r.method, r.path, aliasKey, body); code != http.StatusForbidden || errorCode(out) != codePrimaryKeyRequired {
			t.Errorf("%s %s with an alias: %d %v", r.method, r.path, code, out)
		}
	}
	if code, out := a.do("GET", "/v1/webhooks", otherKey, nil); code != http.StatusOK || len(out["webhooks"].([]any)) != 0 {
		t.Fatalf("another account's list: %d %v", code, out)
	}

	// The audit log records who changed webhooks.
	_, out = a.do("GET", "/v1/audit", key, nil)
	audit, _ := json.Marshal(out)
	for _, action := range []string{"webhook.created", "webhook.updated", "webhook.secret_rotated", "webhook.test"} {
		if !strings.Contains(string(audit), `"action":"`+action+`"`) {
			t.Errorf("audit log lacks %s", action)
		}
	}

	// Delete.
	if code, _ := a.do("DELETE", "/v1/webhooks/"+id, key, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := a.do("GET", "/v1/webhooks/"+id, key, nil); code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", code)
	}
	if code, _ := a.do("POST", "/v1/messages/"+msgID+"/resend", key, nil); code != http.StatusNotFound {
		t.Fatalf("message after its webhook was deleted: %d", code)
	}

	// No secret ever reaches the log.
	for _, s := range []string{secret, newSecret} {
		if strings.Contains(logs.String(), strings.TrimPrefix(s, "whsec_")) {
			t.Fatal("a webhook secret is in the log")
		}
	}
	if !strings.Contains(logs.String(), "/v1/webhooks") {
		t.Fatal("requests were not logged at all")
	}
}

func TestWebhookLimitPerAccount(t *testing.T) {
	a := newOwnerAPI(t)
	_, key := a.account("pro")
	for i := range store.MaxWebhooksPerAccount {
		if code, out := a.do("POST", "/v1/webhooks", key, map[string]any{"url": fmt.Sprintf("https://h%d.example.com/", i), "events": []string{"*"}}); code != http.StatusCreated {
			t.Fatalf("webhook %d: %d %v", i, code, out)
		}
	}
	if code, out := a.do("POST", "/v1/webhooks", key, map[string]any{"url": "https://one-more.example.com/", "events": []string{"*"}}); code != http.StatusForbidden || errorCode(out) != codeWebhookLimit {
		t.Fatalf("one webhook too many: %d %v", code, out)
	}
}
