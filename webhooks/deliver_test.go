package webhooks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"keyd/store"
)

// received is one request as a test receiver saw it.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver is a real HTTP server that records what it receives and answers
// with handler.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, handler http.HandlerFunc) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{r.Method, r.Header.Clone(), body})
		rc.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func answer(code int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

var testNow = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)

func testDelivery(t *testing.T, url string, secrets ...string) Delivery {
	t.Helper()
	body, err := store.NewWebhookBody(store.EventAliasCreated, 1, testNow.Add(-time.Second), map[string]string{"alias_id": "key_01", "hint": "x9Qa"})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) == 0 {
		secrets = []string{NewSecret()}
	}
	return Delivery{URL: url, MsgID: "msg_2Z8Q4dXyKpLm", Body: body, Secrets: secrets}
}

// checkNoSecret fails if an attempt record carries any part of a secret.
func checkNoSecret(t *testing.T, a Attempt, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		enc := strings.TrimPrefix(s, SecretPrefix)
		if enc != "" && (strings.Contains(a.Error, enc) || strings.Contains(a.Response, enc)) {
			t.Fatal("attempt record contains a secret")
		}
	}
}

func TestDeliverOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		status     int
		outcome    Outcome
		retryAfter time.Duration
		errPart    string // "" means Error must be empty
		response   string
	}{
		{"200", answer(200, nil, "thanks"), 200, OutcomeSuccess, 0, "", "thanks"},
		{"201", answer(201, nil, ""), 201, OutcomeSuccess, 0, "", ""},
		{"204", answer(204, nil, ""), 204, OutcomeSuccess, 0, "", ""},
		{"299", answer(299, nil, ""), 299, OutcomeSuccess, 0, "", ""},
		{"500", answer(500, nil, "boom"), 500, OutcomeRetry, 0, "receiver answered 500 Internal Server Error", "boom"},
		{"400", answer(400, nil, `{"error":"bad signature"}`), 400, OutcomeRetry, 0, "400 Bad Request", `{"error":"bad signature"}`},
		{"401", answer(401, nil, ""), 401, OutcomeRetry, 0, "401", ""},
		{"404", answer(404, nil, ""), 404, OutcomeRetry, 0, "404", ""},
		{"429 with Retry-After seconds", answer(429, map[string]string{"Retry-After": "120"}, "slow down"), 429, OutcomeRetryAfter, 2 * time.Minute, "429 Too Many Requests", "slow down"},
		{"429 without Retry-After", answer(429, nil, ""), 429, OutcomeRetry, 0, "429", ""},
		{"503 with Retry-After date", answer(503, map[string]string{"Retry-After": testNow.Add(time.Hour).Format(http.TimeFormat)}, ""), 503, OutcomeRetryAfter, time.Hour, "503 Service Unavailable", ""},
		{"503 with bad Retry-After", answer(503, map[string]string{"Retry-After": "later"}, ""), 503, OutcomeRetry, 0, "503", ""},
		{"503 with huge Retry-After", answer(503, map[string]string{"Retry-After": "9999999"}, ""), 503, OutcomeRetryAfter, MaxRetryAfter, "503", ""},
		{"500 with Retry-After ignored", answer(500, map[string]string{"Retry-After": "60"}, ""), 500, OutcomeRetry, 0, "500", ""},
		{"410", answer(410, nil, "gone"), 410, OutcomeGone, 0, "410 Gone", "gone"},
		{"unknown status", answer(599, nil, ""), 599, OutcomeRetry, 0, "599", ""},
		{"odd reason phrase not echoed", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
		}, 502, OutcomeRetry, 0, "502 Bad Gateway", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.handler)
			d := testDelivery(t, rc.URL+"/hook?token=receiver-own-token")
			a := Deliver(t.Context(), NewClient(true), d, testNow)
			if a.StatusCode != tt.status || a.Outcome != tt.outcome || a.RetryAfter != tt.retryAfter {
				t.Fatalf("attempt = %d %s retry-after %v; want %d %s %v (error %q)",
					a.StatusCode, a.Outcome, a.RetryAfter, tt.status, tt.outcome, tt.retryAfter, a.Error)
			}
			if tt.errPart == "" && a.Error != "" || !strings.Contains(a.Error, tt.errPart) {
				t.Fatalf("Error = %q, want %q", a.Error, tt.errPart)
			}
			if a.Response != tt.response {
				t.Fatalf("Response = %q, want %q", a.Response, tt.response)
			}
			if !a.At.Equal(testNow) || a.Duration <= 0 {
				t.Fatalf("At = %v, Duration = %v", a.At, a.Duration)
			}
			if strings.Contains(a.Error, "receiver-own-token") {
				t.Fatalf("Error %q contains the URL", a.Error)
			}
			checkNoSecret(t, a, d.Secrets)
			if n := len(rc.requests()); n != 1 {
				t.Fatalf("receiver got %d requests, want 1", n)
			}
		})
	}
}

func TestDeliverSendsSignedStandardWebhook(t *testing.T) {
	rc := newReceiver(t, answer(200, nil, ""))
	oldSecret, newSecret := NewSecret(), NewSecret()
	d := testDelivery(t, rc.URL, newSecret, oldSecret)

	// Two attempts of one message, as a retry would make them.
	times := []time.Time{testNow, testNow.Add(5 * time.Second)}
	for _, now := range times {
		if a := Deliver(t.Context(), NewClient(true), d, now); a.Outcome != OutcomeSuccess {
			t.Fatalf("attempt: %+v", a)
		}
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	for i, r := range reqs {
		h := r.header
		if r.method != http.MethodPost {
			t.Errorf("method = %s", r.method)
		}
		if string(r.body) != string(d.Body) {
			t.Errorf("body = %s, want the stored body %s", r.body, d.Body)
		}
		if got := h.Get("webhook-id"); got != d.MsgID {
			t.Errorf("webhook-id = %q, want %q", got, d.MsgID)
		}
		if got := h.Get("webhook-timestamp"); got != strconv.FormatInt(times[i].Unix(), 10) {
			t.Errorf("attempt %d: webhook-timestamp = %q, want %d", i, got, times[i].Unix())
		}
		if got := h.Get("content-type"); got != "application/json" {
			t.Errorf("content-type = %q", got)
		}
		if got := h.Get("user-agent"); got != "keyd-webhooks/1" {
			t.Errorf("user-agent = %q", got)
		}
		if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
			t.Errorf("webhook-signature has %d signatures during a rotation, want 2", n)
		}
		for _, s := range []string{oldSecret, newSecret} {
			if err := Verify(s, h, r.body, times[i], 0); err != nil {
				t.Errorf("attempt %d: Verify: %v", i, err)
			}
			ref, _ := standardwebhooks.NewWebhook(s)
			if err := ref.VerifyIgnoringTimestamp(r.body, h); err != nil {
				t.Errorf("attempt %d: reference library: %v", i, err)
			}
		}
		if err := Verify(NewSecret(), h, r.body, times[i], 0); err == nil {
			t.Error("a stranger's secret verifies")
		}
	}
	if reqs[0].header.Get("webhook-signature") == reqs[1].header.Get("webhook-signature") {
		t.Error("the signature did not change with the attempt's timestamp")
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	target := newReceiver(t, answer(200, nil, "target"))
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	a := Deliver(t.Context(), NewClient(true), testDelivery(t, rc.URL), testNow)
	if a.StatusCode != 302 || a.Outcome != OutcomeRetry || !strings.Contains(a.Error, "redirects are not followed") {
		t.Fatalf("attempt = %+v, want a failed 302", a)
	}
	if n := len(target.requests()); n != 0 {
		t.Fatalf("redirect target got %d requests", n)
	}
}

func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes

	client := NewClient(true)
	client.Timeout = 50 * time.Millisecond
	a := Deliver(t.Context(), client, testDelivery(t, rc.URL), testNow)
	if a.Outcome != OutcomeRetry || a.StatusCode != 0 || a.Error != reasonTimeout || !strings.Contains(a.Detail, "Timeout") {
		t.Fatalf("attempt = %+v, want a timed-out retry", a)
	}
	if a.Duration < 50*time.Millisecond || a.Duration > 5*time.Second {
		t.Fatalf("Duration = %v, want about the 50ms timeout", a.Duration)
	}

	// A cancelled context stops an attempt the same way.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	a = Deliver(ctx, NewClient(true), testDelivery(t, rc.URL), testNow)
	if a.Outcome != OutcomeRetry || a.StatusCode != 0 || a.Error != reasonTimeout || !strings.Contains(a.Detail, "deadline exceeded") {
		t.Fatalf("attempt = %+v, want a retry after the context deadline", a)
	}
}

func TestDeliverTruncatesResponse(t *testing.T) {
	const size = 8 << 20
	chunk := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	for _, code := range []int{200, 500} {
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			for written := 0; written < size; written += len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return // the client hung up, as it should
				}
			}
		})
		a := Deliver(t.Context(), NewClient(true), testDelivery(t, rc.URL), testNow)
		if a.StatusCode != code {
			t.Fatalf("attempt = %+v", a)
		}
		if len(a.Response) != ResponseLimit || a.Response != chunk[:ResponseLimit] {
			t.Fatalf("Response is %d bytes, want the first %d", len(a.Response), ResponseLimit)
		}
		if len(a.Error) > 200 {
			t.Fatalf("Error is %d bytes long", len(a.Error))
		}
	}
}

func TestDeliverFailuresWithoutAnswer(t *testing.T) {
	rc := newReceiver(t, answer(200, nil, ""))
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	goodSecret := NewSecret()
	tests := []struct {
		name    string
		client  *http.Client
		d       Delivery
		errPart string
		outcome Outcome
	}{
		{"loopback refused", NewClient(false), testDelivery(t, rc.URL+"/?token=receiver-own-token", goodSecret), "address not allowed", OutcomeRefused},
		{"connection refused", NewClient(true), testDelivery(t, closed.URL), "connection refused", OutcomeRetry},
		{"bad scheme", NewClient(true), testDelivery(t, "ftp://example.com/"), "unsupported protocol scheme", OutcomeRetry},
		{"bad URL", NewClient(true), testDelivery(t, "http://[::1"), "cannot build request", OutcomeRetry},
		{"invalid secret", NewClient(true), testDelivery(t, rc.URL, "whsec_dG9vLXNob3J0LXNlY3JldA=="), "cannot sign message", OutcomeRetry},
		{"no secret", NewClient(true), Delivery{URL: rc.URL, MsgID: "msg_1", Body: []byte("{}")}, "no signing secret", OutcomeRetry},
		{"no message id", NewClient(true), Delivery{URL: rc.URL, Body: []byte("{}"), Secrets: []string{goodSecret}}, "empty message id", OutcomeRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rc.requests())
			a := Deliver(t.Context(), tt.client, tt.d, testNow)
			if a.Outcome != tt.outcome || a.StatusCode != 0 || !strings.Contains(a.Error, tt.errPart) {
				t.Fatalf("attempt = %+v, want %s with error %q", a, tt.outcome, tt.errPart)
			}
			for _, s := range []string{a.Error, a.Detail} {
				if strings.Contains(s, "receiver-own-token") || strings.Contains(s, "dG9vLXNob3J0") {
					t.Fatalf("%q leaks the URL or a secret", s)
				}
			}
			if s := networkDetail.FindString(a.Error); s != "" {
				t.Fatalf("Error %q names %q", a.Error, s)
			}
			checkNoSecret(t, a, tt.d.Secrets)
			if after := len(rc.requests()); after != before {
				t.Fatal("the receiver was reached")
			}
		})
	}
}
