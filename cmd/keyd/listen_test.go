package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyd/webhooks"
)

func TestWebhooksListenVerifiesAndPrints(t *testing.T) {
	secret := webhooks.NewSecret()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"webhooks", "listen", "--addr", "127.0.0.1:0", "--secret", secret},
			func(string) string { return "" }, stdout, stderr)
	}()
	addrLine := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)/`)
	var url string
	waitFor(t, 10*time.Second, "the listening line", func() bool {
		if m := addrLine.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
			return true
		}
		return false
	})

	send := func(sign string) int {
		body := []byte(`{"type":"key.reset","timestamp":"2026-11-22T10:00:00Z","data":{"hint":"x9Qa"}}`)
		now := time.Now()
		sig, err := webhooks.SignatureHeader([]string{sign}, "msg_listen1", now, body)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", url+"/hook", bytes.NewReader(body))
		req.Header.Set(webhooks.HeaderID, "msg_listen1")
		req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(webhooks.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(secret); code != http.StatusNoContent {
		t.Fatalf("signed delivery: %d, want 204", code)
	}
	if code := send(webhooks.NewSecret()); code != http.StatusUnauthorized {
		t.Fatalf("delivery signed with another secret: %d, want 401", code)
	}
	out := stdout.String()
	if !strings.Contains(out, "verified key.reset msg_listen1") || !strings.Contains(out, `"hint": "x9Qa"`) {
		t.Errorf("output lacks the verified delivery:\n%s", out)
	}
	if !strings.Contains(out, "REFUSED msg_listen1") {
		t.Errorf("output lacks the refused delivery:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Error("the secret was printed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("listen returned %v after cancel", err)
	}
	if _, _, err := newCLI(t).run("webhooks", "listen", "--secret", "nope"); err == nil {
		t.Error("a malformed secret was accepted")
	}
}
