package webhooks

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"keyd/store"
	"keyd/store/storetest"
)

// The tests run on SQLite, or with the tag postgres on a private PostgreSQL
// server (make test-postgres).
func TestMain(m *testing.M) { storetest.Main(m) }

// fakeClock is shared by the store and the worker, and moved by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// workerEnv is a real store in a temp dir, one account and a worker.
type workerEnv struct {
	t       *testing.T
	db      *store.DB
	clock   *fakeClock // nil with the real clock
	w       *Worker
	account store.Created
}

func newWorkerEnv(t *testing.T, realClock bool, cfg WorkerConfig) *workerEnv {
	t.Helper()
	e := &workerEnv{t: t}
	var opts []store.Option
	if !realClock {
		e.clock = &fakeClock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
		opts = append(opts, store.WithClock(e.clock.Now))
		cfg.Now = e.clock.Now
		cfg.Rand = func() float64 { return 0.5 } // no jitter
	}
	db := openStore(t, storetest.DSN(t), opts...)
	e.db = db
	var err error
	if e.account, err = db.CreateAccount(context.Background(), store.SystemActor,
		store.NewAccount{Name: "Acme", Email: "o@acme.test", Plan: "mega", Credits: 10}); err != nil {
		t.Fatal(err)
	}
	cfg.AllowPrivate = true // receivers are on loopback
	e.w = NewWorker(db, cfg)
	return e
}

// openStore opens the database at dsn, another time if it is open already
// (as another keyd process would), and closes it when t ends.
func openStore(t *testing.T, dsn string, opts ...store.Option) *store.DB {
	t.Helper()
	if store.IsPostgresURL(dsn) {
		// PostgreSQL keeps no key file beside the database.
		opts = append([]store.Option{store.WithSecretKey(bytes.Repeat([]byte{0x6b}, store.SecretKeySize))}, opts...)
	}
	db, err := store.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *workerEnv) ctx() context.Context { return context.Background() }

// endpoint registers a receiver URL for patterns and returns it with its secret.
func (e *workerEnv) endpoint(url string, patterns ...string) (store.Webhook, string) {
	e.t.Helper()
	secret := NewSecret()
	w, err := e.db.CreateWebhook(e.ctx(), store.SystemActor, e.account.Account.ID,
		store.NewWebhook{URL: url, Events: patterns, Secret: secret})
	if err != nil {
		e.t.Fatal(err)
	}
	return w, secret
}

// alias makes an alias.created event.
func (e *workerEnv) alias(name string) store.Created {
	e.t.Helper()
	c, err := e.db.CreateAlias(e.ctx(), store.SystemActor, e.account.Account.ID, store.NewAlias{Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// sweep sweeps and waits for the deliveries, again while messages are due
// (a sweep starts at most one message to an endpoint), as the running
// worker would.
func (e *workerEnv) sweep() {
	e.t.Helper()
	sweepAll(e.t, e.w)
}

// sweepAll sweeps with w and waits for the deliveries until a sweep finds
// nothing due.
func sweepAll(t *testing.T, w *Worker) {
	t.Helper()
	for range 100 {
		started, err := w.sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		w.wg.Wait()
		if started == 0 {
			return
		}
	}
	t.Fatal("messages stay due sweep after sweep")
}

// messages lists an endpoint's messages, oldest first.
func (e *workerEnv) messages(webhookID string) []store.WebhookMessage {
	e.t.Helper()
	msgs, err := e.db.ListMessages(e.ctx(), e.account.Account.ID, webhookID, "", "", 100)
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Reverse(msgs)
	return msgs
}

func (e *workerEnv) webhook(id string) store.Webhook {
	e.t.Helper()
	w, err := e.db.GetWebhook(e.ctx(), e.account.Account.ID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// script answers with each handler in turn, then keeps using the last.
func script(hs ...http.HandlerFunc) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		i := min(int(n.Add(1))-1, len(hs)-1)
		hs[i](w, r)
	}
}

// waitFor polls cond for up to 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func payloadOf(t *testing.T, body []byte) (typ string, data map[string]any) {
	t.Helper()
	p, err := store.ParseWebhookBody(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(p.Data, &data); err != nil {
		t.Fatal(err)
	}
	return p.Type, data
}

// verifyingReceiver checks every request with the reference Standard
// Webhooks library, answers 200 to good ones and 401 to others, and keeps
// the good ones.
type verifyingReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	good   []received
	bad    int
}

func newVerifyingReceiver(t *testing.T) *verifyingReceiver {
	t.Helper()
	rc := &verifyingReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(rc.secret)
		if err == nil {
			err = wh.Verify(body, r.Header) // checks the timestamp too
		}
		if err != nil {
			rc.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.good = append(rc.good, received{r.Method, r.Header.Clone(), body})
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *verifyingReceiver) setSecret(s string) {
	rc.mu.Lock()
	rc.secret = s
	rc.mu.Unlock()
}

func (rc *verifyingReceiver) received() (good []received, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.good), rc.bad
}

func TestWorkerDeliversOnCommitToAnIndependentVerifier(t *testing.T) {
	e := newWorkerEnv(t, true, WorkerConfig{})
	rc := newVerifyingReceiver(t)
	hook, secret := e.endpoint(rc.URL+"/hook", "key.*", "alias.*")
	rc.setSecret(secret)

	// Run has no polling of its own: what arrives was sent because the
	// commit woke the worker.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	alias := e.alias("client")
	aliasID := alias.Key.ID
	if _, err := e.db.SetAliasStatus(e.ctx(), store.SystemActor, e.account.Account.ID, aliasID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SetAliasStatus(e.ctx(), store.SystemActor, e.account.Account.ID, aliasID, true); err != nil {
		t.Fatal(err)
	}
	// Audit-only events are never delivered, even to "*"-like patterns.
	name := "main"
	if _, err := e.db.UpdatePrimaryKey(e.ctx(), store.SystemActor, e.account.Account.ID, e.account.Key.ID, &name, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.AddCredits(e.ctx(), store.SystemActor, e.account.Account.ID, 5, "top-up"); err != nil {
		t.Fatal(err)
	}
	reset, err := e.db.ResetPrimaryKey(e.ctx(), store.SystemActor, e.account.Account.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.DeleteAlias(e.ctx(), store.SystemActor, e.account.Account.ID, aliasID); err != nil {
		t.Fatal(err)
	}

	want := []string{store.EventAliasCreated, store.EventAliasDeactivated, store.EventAliasReactivated, store.EventKeyReset, store.EventAliasDeleted}
	waitFor(t, "five verified messages", func() bool {
		good, _ := rc.received()
		return len(good) >= len(want)
	})
	// Let anything that should not have been sent show up.
	waitFor(t, "every message delivered", func() bool {
		for _, m := range e.messages(hook.ID) {
			if m.Status != store.MessageDelivered {
				return false
			}
		}
		return true
	})
	good, bad := rc.received()
	if bad != 0 {
		t.Fatalf("%d requests failed verification", bad)
	}
	msgs := e.messages(hook.ID)
	if len(good) != len(want) || len(msgs) != len(want) {
		t.Fatalf("receiver verified %d messages, store has %d; want %d", len(good), len(msgs), len(want))
	}
	var gotTypes []string
	ids := map[string]bool{}
	for _, r := range good {
		typ, data := payloadOf(t, r.body)
		gotTypes = append(gotTypes, typ)
		ids[r.header.Get("webhook-id")] = true
		if data["account_id"] != e.account.Account.ID || data["key_id"] == nil || data["hint"] == nil {
			t.Errorf("%s data %v lacks account_id, key_id or hint", typ, data)
		}
		if typ == store.EventKeyReset {
			prev, _ := data["previous"].(map[string]any)
			if prev["id"] != e.account.Key.ID || prev["valid_until"] == nil {
				t.Errorf("key.reset previous = %v", data["previous"])
			}
		}
		// Never a key or its hash.
		for _, key := range []string{alias.Secret, reset.Secret, e.account.Secret} {
			h := store.HashKey(key)
			if strings.Contains(string(r.body), key) || strings.Contains(string(r.body), hex.EncodeToString(h[:])) {
				t.Fatalf("%s payload contains a key or its hash: %s", typ, r.body)
			}
		}
		if r.header.Get("user-agent") != UserAgent || r.header.Get("content-type") != "application/json" {
			t.Errorf("headers %v", r.header)
		}
	}
	slices.Sort(gotTypes)
	slices.Sort(want)
	if !slices.Equal(gotTypes, want) {
		t.Fatalf("received %v, want %v", gotTypes, want)
	}
	for _, m := range msgs {
		if !ids[m.ID] {
			t.Fatalf("message %s was not received under its id", m.ID)
		}
	}
}

// oneMessage returns the endpoint's only message.
func (e *workerEnv) oneMessage(webhookID string) store.WebhookMessage {
	e.t.Helper()
	msgs := e.messages(webhookID)
	if len(msgs) != 1 {
		e.t.Fatalf("%d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func TestServerErrorIsRetriedOnSchedule(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, script(answer(500, nil, "db down"), answer(200, nil, "ok")))
	hook, secret := e.endpoint(rc.URL, "*")
	e.alias("client")
	start := e.clock.Now()

	e.sweep()
	m := e.oneMessage(hook.ID)
	if len(rc.requests()) != 1 || m.Status != store.MessagePending || len(m.Attempts) != 1 {
		t.Fatalf("after the first attempt: %d requests, message %+v", len(rc.requests()), m)
	}
	a := m.Attempts[0]
	if a.StatusCode != 500 || a.Response != "db down" || !strings.Contains(a.Error, "500") || a.Outcome != "retry" {
		t.Fatalf("attempt logged as %+v", a)
	}
	if m.NextAttemptAt == nil || !m.NextAttemptAt.Equal(start.Add(5*time.Second)) {
		t.Fatalf("next attempt at %v, want 5s after the failure", m.NextAttemptAt)
	}
	if w := e.webhook(hook.ID); w.FailingSince == nil || !w.FailingSince.Equal(start) {
		t.Fatalf("failing_since = %v", w.FailingSince)
	}

	e.clock.Advance(4 * time.Second)
	e.sweep()
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("retried after 4s: %d requests", n)
	}
	e.clock.Advance(time.Second)
	e.sweep()
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests after 5s, want the retry", len(reqs))
	}
	if reqs[0].header.Get("webhook-id") != reqs[1].header.Get("webhook-id") || reqs[1].header.Get("webhook-id") != m.ID {
		t.Fatal("the retry has another webhook-id")
	}
	if string(reqs[0].body) != string(reqs[1].body) {
		t.Fatal("the retry has another body")
	}
	if reqs[0].header.Get("webhook-timestamp") == reqs[1].header.Get("webhook-timestamp") {
		t.Fatal("the retry kept the first attempt's timestamp")
	}
	ref, _ := standardwebhooks.NewWebhook(secret)
	if err := ref.VerifyIgnoringTimestamp(reqs[1].body, reqs[1].header); err != nil {
		t.Fatalf("retry does not verify: %v", err)
	}
	m = e.oneMessage(hook.ID)
	if m.Status != store.MessageDelivered || len(m.Attempts) != 2 || m.Attempts[1].StatusCode != 200 || m.NextAttemptAt != nil {
		t.Fatalf("after the retry: %+v", m)
	}
	if w := e.webhook(hook.ID); w.FailingSince != nil || w.LastSuccessAt == nil {
		t.Fatalf("after a success: failing_since %v, last_success_at %v", w.FailingSince, w.LastSuccessAt)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for _, code := range []int{429, 503} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			e := newWorkerEnv(t, false, WorkerConfig{})
			rc := newReceiver(t, script(answer(code, map[string]string{"Retry-After": "600"}, ""), answer(204, nil, "")))
			hook, _ := e.endpoint(rc.URL, "alias.*")
			e.alias("client")
			start := e.clock.Now()
			e.sweep()
			m := e.oneMessage(hook.ID)
			if m.NextAttemptAt == nil || !m.NextAttemptAt.Equal(start.Add(10*time.Minute)) {
				t.Fatalf("next attempt at %v, want the 600s the receiver asked for", m.NextAttemptAt)
			}
			if m.Attempts[0].Outcome != string(OutcomeRetryAfter) {
				t.Fatalf("outcome %q", m.Attempts[0].Outcome)
			}
			e.clock.Advance(10*time.Minute - time.Second)
			e.sweep()
			if n := len(rc.requests()); n != 1 {
				t.Fatalf("retried before Retry-After: %d requests", n)
			}
			e.clock.Advance(time.Second)
			e.sweep()
			if m := e.oneMessage(hook.ID); len(rc.requests()) != 2 || m.Status != store.MessageDelivered {
				t.Fatalf("after Retry-After: %d requests, status %s", len(rc.requests()), m.Status)
			}
		})
	}
}

func TestGoneDisablesTheEndpointAndTellsTheOthers(t *testing.T) {
	// One message in flight per endpoint, so the second is still pending
	// when the first one's answer disables the endpoint.
	e := newWorkerEnv(t, false, WorkerConfig{})
	gone := newReceiver(t, answer(410, nil, "unsubscribed"))
	watcher := newReceiver(t, answer(200, nil, ""))
	goneHook, _ := e.endpoint(gone.URL, "*")
	watchHook, _ := e.endpoint(watcher.URL, "webhook.disabled")

	e.alias("one")
	e.alias("two")
	e.sweep()
	w := e.webhook(goneHook.ID)
	if w.Enabled || w.DisabledReason == nil || *w.DisabledReason != store.DisabledGone || w.DisabledAt == nil {
		t.Fatalf("after a 410: %+v", w)
	}
	// The other pending message is not sent to a disabled endpoint.
	if n := len(gone.requests()); n != 1 {
		t.Fatalf("the gone endpoint got %d requests, want 1", n)
	}
	for _, m := range e.messages(goneHook.ID) {
		if m.Status != store.MessageFailed {
			t.Fatalf("message %s is %s, want failed", m.ID, m.Status)
		}
	}

	e.sweep() // fans out webhook.disabled
	reqs := watcher.requests()
	if len(reqs) != 1 {
		t.Fatalf("watcher got %d requests, want the webhook.disabled", len(reqs))
	}
	typ, data := payloadOf(t, reqs[0].body)
	if typ != store.EventWebhookDisabled || data["webhook_id"] != goneHook.ID || data["reason"] != store.DisabledGone {
		t.Fatalf("watcher got %s %v", typ, data)
	}
	if got := e.messages(watchHook.ID); len(got) != 1 || got[0].Status != store.MessageDelivered {
		t.Fatalf("watcher messages %+v", got)
	}

	e.alias("three")
	e.sweep()
	if n := len(gone.requests()); n != 1 {
		t.Fatalf("a disabled endpoint got a new event (%d requests)", n)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	target := newReceiver(t, answer(200, nil, ""))
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	hook, _ := e.endpoint(rc.URL, "*")
	e.alias("client")
	e.sweep()
	if n := len(target.requests()); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
	m := e.oneMessage(hook.ID)
	if m.Status != store.MessagePending || m.Attempts[0].StatusCode != 307 || !strings.Contains(m.Attempts[0].Error, "redirects are not followed") {
		t.Fatalf("after a redirect: %+v", m)
	}
}

func TestExhaustedScheduleFailsTheMessage(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, answer(500, nil, ""))
	hook, _ := e.endpoint(rc.URL, "*")
	e.alias("client")
	e.sweep()
	for n := 1; n < MaxAttempts; n++ {
		m := e.oneMessage(hook.ID)
		d, _ := Delay(n + 1)
		if m.Status != store.MessagePending || !m.NextAttemptAt.Equal(m.LastAttemptAt.Add(d)) {
			t.Fatalf("after attempt %d: status %s, next %v, want %v after the last", n, m.Status, m.NextAttemptAt, d)
		}
		e.clock.Advance(d)
		e.sweep()
	}
	m := e.oneMessage(hook.ID)
	if m.Status != store.MessageFailed || len(m.Attempts) != MaxAttempts || m.NextAttemptAt != nil {
		t.Fatalf("after %d attempts: status %s, %d attempts logged", MaxAttempts, m.Status, len(m.Attempts))
	}
	e.clock.Advance(24 * time.Hour)
	e.sweep()
	if n := len(rc.requests()); n != MaxAttempts {
		t.Fatalf("%d requests, want %d", n, MaxAttempts)
	}
	// About a day of failures does not disable the endpoint.
	if !e.webhook(hook.ID).Enabled {
		t.Fatal("endpoint disabled before failing for 5 days")
	}

	// Recovery sends failed messages again once the receiver is fixed.
	if n, err := e.db.RecoverMessages(e.ctx(), e.account.Account.ID, hook.ID, m.CreatedAt); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v", n, err)
	}
	fixed := newReceiver(t, answer(200, nil, ""))
	url := fixed.URL
	if _, err := e.db.UpdateWebhook(e.ctx(), store.SystemActor, e.account.Account.ID, hook.ID, store.WebhookPatch{URL: &url}); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	if m := e.oneMessage(hook.ID); m.Status != store.MessageDelivered || len(fixed.requests()) != 1 {
		t.Fatalf("after recovery: status %s, %d requests", m.Status, len(fixed.requests()))
	}
	// A resend sends a delivered message again, under the same id.
	if _, err := e.db.ResendMessage(e.ctx(), e.account.Account.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	reqs := fixed.requests()
	if len(reqs) != 2 || reqs[1].header.Get("webhook-id") != m.ID {
		t.Fatalf("after a resend: %d requests", len(reqs))
	}
}

func TestEndpointFailingForFiveDaysIsDisabled(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	broken := newReceiver(t, answer(502, nil, ""))
	watcher := newReceiver(t, answer(200, nil, ""))
	hook, _ := e.endpoint(broken.URL, "alias.*")
	e.endpoint(watcher.URL, "webhook.*")
	start := e.clock.Now()
	e.alias("one")
	e.sweep()
	e.clock.Advance(store.WebhookDisableAfter - time.Minute)
	e.alias("two")
	e.sweep()
	if w := e.webhook(hook.ID); !w.Enabled || !w.FailingSince.Equal(start) {
		t.Fatalf("before 5 days: enabled %v, failing since %v", w.Enabled, w.FailingSince)
	}
	e.clock.Advance(time.Minute)
	e.alias("three")
	e.sweep()
	w := e.webhook(hook.ID)
	if w.Enabled || *w.DisabledReason != store.DisabledFailing {
		t.Fatalf("after 5 days of failures: %+v", w)
	}
	e.sweep()
	reqs := watcher.requests()
	if len(reqs) != 1 {
		t.Fatalf("watcher got %d requests", len(reqs))
	}
	if typ, data := payloadOf(t, reqs[0].body); typ != store.EventWebhookDisabled || data["reason"] != store.DisabledFailing || data["webhook_id"] != hook.ID {
		t.Fatalf("watcher got %s %v", typ, data)
	}
}

func TestSlowEndpointDoesNotStarveOthers(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{Workers: 3})
	release := make(chan struct{})
	var inSlow, maxSlow atomic.Int64
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		n := inSlow.Add(1)
		defer inSlow.Add(-1)
		for {
			m := maxSlow.Load()
			if n <= m || maxSlow.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the server closes
	fast := newReceiver(t, answer(200, nil, ""))
	slowHook, _ := e.endpoint(slow.URL, "*")
	fastHook, _ := e.endpoint(fast.URL, "*")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const events = 6
	for i := range events {
		e.alias(fmt.Sprintf("client %d", i))
	}
	waitFor(t, "the fast endpoint to get every message", func() bool { return len(fast.requests()) == events })
	waitFor(t, "a request held by the slow endpoint", func() bool { return inSlow.Load() == 1 })
	if m := maxSlow.Load(); m > 1 {
		t.Fatalf("%d requests in flight to one endpoint, want at most 1", m)
	}
	waitFor(t, "the fast endpoint's messages to be delivered", func() bool {
		for _, m := range e.messages(fastHook.ID) {
			if m.Status != store.MessageDelivered {
				return false
			}
		}
		return true
	})
	if n := len(slow.requests()); n != 1 {
		t.Fatalf("the slow endpoint got %d requests while holding one", n)
	}
	releaseOnce.Do(func() { close(release) })
	waitFor(t, "the slow endpoint to catch up", func() bool {
		for _, m := range e.messages(slowHook.ID) {
			if m.Status != store.MessageDelivered {
				return false
			}
		}
		return true
	})
	if n := len(slow.requests()); n != events {
		t.Fatalf("slow endpoint got %d requests, want %d", n, events)
	}
	if m := maxSlow.Load(); m > 1 {
		t.Fatalf("%d requests in flight to one endpoint, want at most 1", m)
	}
}

func TestRotatedSecretSignsAlongsideForADay(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, answer(200, nil, ""))
	hook, oldSecret := e.endpoint(rc.URL, "*")
	newSecret := NewSecret()
	if _, err := e.db.RotateWebhookSecret(e.ctx(), store.SystemActor, e.account.Account.ID, hook.ID, newSecret, RotationOverlap); err != nil {
		t.Fatal(err)
	}
	verifies := func(r received, secret string) bool {
		ref, err := standardwebhooks.NewWebhook(secret)
		return err == nil && ref.VerifyIgnoringTimestamp(r.body, r.header) == nil
	}
	e.alias("one")
	e.sweep()
	reqs := rc.requests()
	if len(reqs) != 1 || len(strings.Fields(reqs[0].header.Get("webhook-signature"))) != 2 {
		t.Fatalf("during the overlap: %d requests, signature %q", len(reqs), reqs[0].header.Get("webhook-signature"))
	}
	if !verifies(reqs[0], oldSecret) || !verifies(reqs[0], newSecret) {
		t.Fatal("during the overlap a message does not verify with both secrets")
	}

	e.clock.Advance(RotationOverlap)
	e.alias("two")
	e.sweep()
	reqs = rc.requests()
	if len(reqs) != 2 || len(strings.Fields(reqs[1].header.Get("webhook-signature"))) != 1 {
		t.Fatalf("after the overlap: %d requests", len(reqs))
	}
	if verifies(reqs[1], oldSecret) || !verifies(reqs[1], newSecret) {
		t.Fatal("after the overlap the old secret still verifies, or the new one does not")
	}
}

func TestStoppedAttemptIsNotRecorded(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{StopGrace: 50 * time.Millisecond})
	arrived := make(chan struct{}, 1)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done() // never answers
	})
	hook, _ := e.endpoint(rc.URL, "*")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.w.Run(ctx); close(done) }()
	e.alias("client")
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no request arrived")
	}
	cancel()
	<-done
	// The attempt cut short by the stop is not the receiver's failure: the
	// message is still due, with no try used up.
	m := e.oneMessage(hook.ID)
	if m.Status != store.MessagePending || len(m.Attempts) != 0 {
		t.Fatalf("after a stop mid-attempt: %+v", m)
	}
	// Its lease was given up with the stop: another worker takes it at once.
	due, err := e.db.ClaimDueMessages(e.ctx(), "another worker", e.clock.Now(), time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Tries != 0 {
		t.Fatalf("due after the stop: %+v, %v", due, err)
	}
}

func TestSweepPicksUpChangesFromAnotherProcess(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, answer(200, nil, ""))
	hook, _ := e.endpoint(rc.URL, "alias.*")
	<-e.db.Changes() // drain this process's own signals

	// An operator command opens the database itself, as the CLI does.
	cli := openStore(t, e.db.Path(), store.WithoutIndex(), store.WithClock(e.clock.Now))
	if _, err := cli.CreateAlias(e.ctx(), store.OperatorActor("cli"), e.account.Account.ID, store.NewAlias{Name: "from cli"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.db.Changes():
		t.Fatal("a change by another process was signalled locally")
	default:
	}
	e.sweep() // what the scheduled sweep does every second
	if m := e.oneMessage(hook.ID); m.Status != store.MessageDelivered || len(rc.requests()) != 1 {
		t.Fatalf("after a sweep: %+v, %d requests", m, len(rc.requests()))
	}
}

func TestSubaccountAndCreditEventsAreDelivered(t *testing.T) {
	e := newWorkerEnv(t, false, WorkerConfig{})
	rc := newReceiver(t, answer(200, nil, ""))
	hook, _ := e.endpoint(rc.URL, "subaccount.*", "credits.*")
	parent := e.account.Account.ID
	if _, err := e.db.AddCredits(e.ctx(), store.SystemActor, parent, 1000, "purchase"); err != nil {
		t.Fatal(err)
	}
	sub, err := e.db.CreateSubaccount(e.ctx(), store.SystemActor, parent, store.NewAccount{Name: "Client", Email: "c@client.test", Credits: 950})
	if err != nil {
		t.Fatal(err)
	}
	e.sweep()
	got := map[string]map[string]any{}
	for _, r := range rc.requests() {
		typ, data := payloadOf(t, r.body)
		got[typ] = data
	}
	if len(got) != 3 || got[store.EventSubaccountCreated] == nil || got[store.EventCreditsAllocated] == nil || got[store.EventCreditsLow] == nil {
		t.Fatalf("received %v; want subaccount.created, credits.allocated and credits.low (and not the audit-only credits.added)", got)
	}
	if d := got[store.EventSubaccountCreated]; d["subaccount_id"] != sub.Account.ID || d["account_id"] != parent {
		t.Fatalf("subaccount.created data %v", d)
	}
	if d := got[store.EventCreditsLow]; d["account_id"] != parent || d["credits"] != 60.0 {
		t.Fatalf("credits.low data %v", d)
	}
	if n := len(e.messages(hook.ID)); n != 3 {
		t.Fatalf("%d messages stored, want 3", n)
	}
}

func TestOnAttemptReportsEachRecordedOutcome(t *testing.T) {
	var mu sync.Mutex
	outcomes := map[string]int{}
	e := newWorkerEnv(t, false, WorkerConfig{OnAttempt: func(o string) {
		mu.Lock()
		defer mu.Unlock()
		outcomes[o]++
	}})
	ok := newReceiver(t, answer(200, nil, ""))
	broken := newReceiver(t, answer(500, nil, "down"))
	gone := newReceiver(t, answer(410, nil, "unsubscribed"))
	e.endpoint(ok.URL, "alias.created")
	e.endpoint(broken.URL, "alias.created")
	e.endpoint(gone.URL, "alias.created")
	e.alias("one")
	e.sweep()
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int{"delivered": 1, "retrying": 1, "gone": 1}; !maps.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
}
