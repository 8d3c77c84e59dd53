package console_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keyd/store"
	"keyd/webhooks"
)

// receiver is a real HTTP endpoint that keeps what it receives and answers
// with HTML, which the console must show as text.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	wake chan struct{}
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{wake: make(chan struct{}, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		io.WriteString(w, `<b>ok</b><script>alert(1)</script>`)
		r.wake <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

var whsecRE = regexp.MustCompile(`id="shown-secret">(whsec_[^<]+)<`)

// deliverAll runs the real delivery worker until every due message was
// attempted once, as keyd serve does.
func (e *env) deliverAll(t *testing.T, r *receiver, webhookID string, want int) {
	t.Helper()
	w := webhooks.NewWorker(e.db, webhooks.WorkerConfig{AllowPrivate: true, Now: e.clock.Now})
	if err := w.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < want; i++ {
		<-r.wake
	}
	// The attempt is recorded after the answer is read: wait for it.
	for {
		msgs, err := e.db.ListMessages(context.Background(), e.acc.Account.ID, webhookID, "", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, m := range msgs {
			if len(m.Attempts) == 0 {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhooksLikeTheAPI(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	b := e.browser()
	b.signIn(e.acc.Secret)
	mustContain(t, b.get("/console/webhooks"), "No endpoints yet")

	// Bad input: the URL rule's words next to the field, nothing created.
	before := e.lastAudit(e.acc.Account.ID).ID
	p := b.post("/console/webhooks", url.Values{"url": {"ftp://example.com/<x>"}, "events": {"*"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("bad URL: %d", p.status)
	}
	mustContain(t, p, `id="wh-url-error">URL: `, `value="ftp://example.com/&lt;x&gt;"`)
	p = b.post("/console/webhooks", url.Values{"url": {r.URL + "/hook"}, "events": {"nothing.such"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("bad pattern: %d", p.status)
	}
	mustContain(t, p, `id="wh-events-error">Events: `)
	if e.lastAudit(e.acc.Account.ID).ID != before {
		t.Fatal("a refused form changed something")
	}

	// Added: the secret is shown once.
	added := b.follow(b.post("/console/webhooks", url.Values{"url": {r.URL + "/hook?a=<b>"}, "events": {"key.* webhook.test"}, "description": {"<i>ops</i>"}}))
	m := whsecRE.FindStringSubmatch(added.body)
	if m == nil {
		t.Fatalf("no secret shown:\n%s", added.body)
	}
	secret := html.UnescapeString(m[1])
	mustContain(t, added, "/hook?a=&lt;b&gt;", "&lt;i&gt;ops&lt;/i&gt;", "No messages yet")
	mustLack(t, b.get("/console/webhooks"), m[1], "<i>ops</i>")
	a := e.consoleAudit(e.acc.Account.ID, store.EventWebhookCreated)
	id := *a.TargetID

	// A key reset in the console goes out as a signed key.reset.
	b.get("/console/keys/reset")
	b.follow(b.post("/console/keys/reset", url.Values{"grace_period": {"1h"}}))
	e.deliverAll(t, r, id, 1)
	r.mu.Lock()
	got := r.got[0]
	r.mu.Unlock()
	if err := webhooks.Verify(secret, got.header, got.body, e.clock.Now(), 0); err != nil {
		t.Fatalf("key.reset signature: %v", err)
	}
	if !strings.Contains(string(got.body), `"type":"key.reset"`) {
		t.Fatalf("receiver got %s", got.body)
	}
	log := b.get("/console/webhooks/" + id)
	mustContain(t, log, "key.reset", "200 delivered", "&lt;b&gt;ok&lt;/b&gt;&lt;script&gt;")
	mustLack(t, log, "<script>alert(1)</script>")

	// Test event, resend, disable and enable: the API's operations.
	b.follow(b.post("/console/webhooks/"+id+"/test", nil))
	e.deliverAll(t, r, id, 1)
	msgs, _ := e.db.ListMessages(context.Background(), e.acc.Account.ID, id, "", "", 10)
	if len(msgs) != 2 || msgs[0].Type != store.EventWebhookTest {
		t.Fatalf("messages after a test: %+v", msgs)
	}
	b.follow(b.post("/console/messages/"+msgs[0].ID+"/resend", nil))
	if m, _ := e.db.GetMessage(context.Background(), e.acc.Account.ID, msgs[0].ID); m.Status != store.MessagePending {
		t.Fatalf("resent message is %s, want pending", m.Status)
	}
	b.follow(b.post("/console/webhooks/"+id+"/disable", nil))
	mustContain(t, b.get("/console/webhooks"), "Disabled by you")
	e.consoleAudit(e.acc.Account.ID, store.EventWebhookUpdated)
	b.follow(b.post("/console/webhooks/"+id+"/enable", nil))
	if w, _ := e.db.GetWebhook(context.Background(), e.acc.Account.ID, id); !w.Enabled {
		t.Fatal("endpoint not enabled again")
	}
	rot := b.follow(b.post("/console/webhooks/"+id+"/rotate-secret", nil))
	if m := whsecRE.FindStringSubmatch(rot.body); m == nil || m[1] == secret {
		t.Fatal("rotation shows no new secret")
	}
	e.consoleAudit(e.acc.Account.ID, store.EventWebhookSecretRotated)

	// Another account cannot reach it.
	other := e.account("Other")
	ob := e.browser()
	ob.signIn(other.Secret)
	for _, p := range []page{ob.get("/console/webhooks/" + id), ob.get("/console/webhooks/" + id + "/delete"),
		ob.post("/console/webhooks/"+id+"/disable", nil), ob.post("/console/webhooks/"+id+"/delete", nil),
		ob.post("/console/messages/"+msgs[0].ID+"/resend", nil)} {
		if p.status != http.StatusNotFound {
			t.Fatalf("another account's endpoint: %d, want 404", p.status)
		}
	}

	mustContain(t, b.get("/console/webhooks/"+id+"/delete"), "cannot be undone")
	b.follow(b.post("/console/webhooks/"+id+"/delete", nil))
	if _, err := e.db.GetWebhook(context.Background(), e.acc.Account.ID, id); err == nil {
		t.Fatal("endpoint not deleted")
	}
	e.consoleAudit(e.acc.Account.ID, store.EventWebhookDeleted)
}
