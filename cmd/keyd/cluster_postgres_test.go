//go:build postgres

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"keyd/store"
	"keyd/store/postgres/pgtest"
)

// cluster is one PostgreSQL server of its own and keyd replicas on it.
type cluster struct {
	t        *testing.T
	bin      string
	pg       *pgtest.Server
	dsn      string
	flags    []string
	replicas []*keydProcess
}

func startCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	bin := buildKeyd(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	secret := make([]byte, 32)
	rand.Read(secret)
	c := &cluster{t: t, bin: bin, pg: pg, dsn: pg.Database(t),
		flags: append([]string{"--secret-key", base64.StdEncoding.EncodeToString(secret), "--replica-timeout", "3s"}, extra...)}
	for range n {
		c.replicas = append(c.replicas, c.start())
	}
	return c
}

// start starts one more replica.
func (c *cluster) start(extra ...string) *keydProcess {
	c.t.Helper()
	return startKeyd(c.t, c.bin, c.dsn, append(append([]string{}, c.flags...), extra...)...)
}

// send makes one request and returns its status and decoded body.
func send(t *testing.T, method, url, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func validates(t *testing.T, p *keydProcess, key string) bool {
	t.Helper()
	code, _ := send(t, "POST", p.url+"/v1/validate", "", map[string]any{"key": key})
	return code == http.StatusOK
}

// newClusterAccount makes an enterprise account (no rate limit) with room
// for aliases, on replica p.
func newClusterAccount(t *testing.T, p *keydProcess, name string, credits int) (id, key string) {
	t.Helper()
	var created struct {
		Account struct{ ID string }
		Key     string
	}
	p.call(t, "POST", "/admin/v1/accounts", crashTestAdminToken,
		map[string]any{"name": name, "email": "o@" + name + ".test", "plan": "enterprise", "credits": credits}, &created)
	p.call(t, "PATCH", "/admin/v1/accounts/"+created.Account.ID, crashTestAdminToken, map[string]any{"alias_limit": 1000}, nil)
	return created.Account.ID, created.Key
}

func poolOf(t *testing.T, p *keydProcess, accountID string) int {
	t.Helper()
	var acc struct{ Credits int }
	p.call(t, "GET", "/admin/v1/accounts/"+accountID, crashTestAdminToken, nil, &acc)
	return acc.Credits
}

// TestCluster runs one PostgreSQL and three keyd replicas on this machine:
// changes are seen on every replica by the time they are answered, credits
// stay exact, an idempotency key charges once across the cluster, and a
// burst of changes made across the replicas reaches a webhook receiver
// whole, in order, even when a replica is killed in the middle of it.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	r := c.replicas
	accountID, primary := newClusterAccount(t, r[0], "cluster", 1000)

	// keyd migrate on the replicas' database: nothing left to apply.
	out, err := exec.Command(c.bin, "migrate", "--db", c.dsn).CombinedOutput()
	if want := fmt.Sprintf("is at schema version %d\n", store.LatestSchemaVersion()); err != nil || !strings.HasSuffix(string(out), want) {
		t.Fatalf("keyd migrate: %v, %s; want it to end with %q", err, out, want)
	}
	// Operator commands take the same URL.
	if out, err := exec.Command(c.bin, "accounts", "list", "--db", c.dsn).CombinedOutput(); err != nil || !strings.Contains(string(out), accountID) {
		t.Fatalf("keyd accounts list: %v, %s; want the account %s", err, out, accountID)
	}

	// Created on replica 1, valid on 2 and 3 at once; deactivated on 2,
	// refused on 1 and 3 by the time 2 answers.
	for i := range 20 {
		var alias struct {
			Alias struct{ ID string }
			Key   string
		}
		r[0].call(t, "POST", "/v1/aliases", primary, map[string]any{"name": fmt.Sprint("site ", i)}, &alias)
		for _, p := range []*keydProcess{r[1], r[2]} {
			if !validates(t, p, alias.Key) {
				t.Fatalf("trial %d: an alias created on replica 1 is refused on %s", i, p.url)
			}
		}
		r[1].call(t, "POST", "/v1/aliases/"+alias.Alias.ID+"/deactivate", primary, nil, nil)
		for _, p := range []*keydProcess{r[0], r[2]} {
			if validates(t, p, alias.Key) {
				t.Fatalf("trial %d: an alias deactivated on replica 2 is still accepted on %s", i, p.url)
			}
		}
	}

	// 2,000 concurrent charges over the three replicas against 1,000
	// credits: exactly 1,000 succeed and the pool ends at 0.
	var charged, refused, other atomic.Int64
	var wg sync.WaitGroup
	for i := range 2000 {
		wg.Go(func() {
			code, _ := send(t, "POST", r[i%3].url+"/v1/usage", primary, map[string]any{"units": 1})
			switch code {
			case http.StatusOK:
				charged.Add(1)
			case http.StatusPaymentRequired:
				refused.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	wg.Wait()
	if charged.Load() != 1000 || refused.Load() != 1000 || other.Load() != 0 {
		t.Fatalf("2,000 charges of 1 against 1,000 credits: %d charged, %d refused, %d other; want 1,000, 1,000, 0",
			charged.Load(), refused.Load(), other.Load())
	}
	for _, p := range r {
		if pool := poolOf(t, p, accountID); pool != 0 {
			t.Fatalf("pool after the charges, read on %s: %d, want 0", p.url, pool)
		}
	}

	// One idempotency key sent to all three replicas at once charges once.
	replayID, replayKey := newClusterAccount(t, r[1], "replays", 100)
	answers := make([]map[string]any, 9)
	for i := range answers {
		wg.Go(func() {
			code, out := send(t, "POST", r[i%3].url+"/v1/usage", replayKey, map[string]any{"units": 7, "idempotency_key": "order-1"})
			if code != http.StatusOK {
				t.Errorf("replay %d: %d %v", i, code, out)
			}
			answers[i] = out
		})
	}
	wg.Wait()
	if pool := poolOf(t, r[2], replayID); pool != 93 {
		t.Fatalf("one idempotency key sent 9 times over 3 replicas left the pool at %d, want 93", pool)
	}
	for i, a := range answers {
		if a["credits"] != float64(93) || a["charged"] != float64(7) {
			t.Fatalf("replay %d answered %v, want the first answer (93 credits, 7 charged)", i, a)
		}
	}
	// Validation on every replica shows the pool after the charge, from
	// its memory, which hears of charges made on the others.
	for _, p := range r {
		waitUntil(t, "validation on "+p.url+" to show the pool after the charge", 10*time.Second, func() bool {
			code, out := send(t, "POST", p.url+"/v1/validate", "", map[string]any{"key": replayKey})
			account, _ := out["account"].(map[string]any)
			return code == http.StatusOK && account["credits"] == float64(93)
		})
	}

	// A burst of 200 changes made round the replicas reaches the receiver
	// whole and in order, with replica 3 killed in the middle of it.
	rc := &clusterReceiver{deliveries: map[string][]time.Time{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	var hook struct {
		Webhook struct{ ID string }
		Secret  string
	}
	r[0].call(t, "POST", "/v1/webhooks", primary, map[string]any{"url": srv.URL, "events": []string{"alias.*"}}, &hook)
	rc.setSecret(hook.Secret)
	up := []*keydProcess{r[0], r[1], r[2]}
	const changes = 200
	var killedAt time.Time
	for i := range changes / 2 {
		if i == changes/4 {
			if err := r[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-r[2].done
			killedAt = time.Now()
			up = up[:2]
		}
		var alias struct{ Alias struct{ ID string } }
		up[i%len(up)].call(t, "POST", "/v1/aliases", primary, map[string]any{"name": fmt.Sprint("burst ", i)}, &alias)
		up[(i+1)%len(up)].call(t, "POST", "/v1/aliases/"+alias.Alias.ID+"/deactivate", primary, nil, nil)
	}
	r[2] = c.start()
	waitUntil(t, "every change of the burst to be received", 60*time.Second, func() bool {
		return rc.distinct() == changes
	})
	time.Sleep(time.Second) // room for a duplicate to show
	rc.check(t, changes, killedAt, loggedAttempts(t, r[0], primary, hook.Webhook.ID))
}

// loggedAttempts returns, for each message to the endpoint, how many
// attempts keyd logged, and fails unless every message is delivered.
func loggedAttempts(t *testing.T, p *keydProcess, key, webhookID string) map[string]int {
	t.Helper()
	logged := map[string]int{}
	before := ""
	for {
		var page struct {
			Messages   []store.WebhookMessage
			NextBefore *string `json:"next_before"`
		}
		p.call(t, "GET", "/v1/webhooks/"+webhookID+"/deliveries?limit=100&before="+before, key, nil, &page)
		for _, m := range page.Messages {
			if m.Status != store.MessageDelivered {
				t.Errorf("message %s is %s in keyd's log, want delivered", m.ID, m.Status)
			}
			logged[m.ID] = len(m.Attempts)
		}
		if page.NextBefore == nil {
			return logged
		}
		before = *page.NextBefore
	}
}

// clusterReceiver verifies each message with the reference Standard Webhooks
// library and records what it acknowledged.
type clusterReceiver struct {
	mu         sync.Mutex
	secret     string
	deliveries map[string][]time.Time // webhook-id: when each delivery was answered 2xx
	sequences  []float64              // of first deliveries, in arrival order
	bad        int
}

func (rc *clusterReceiver) setSecret(s string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secret = s
}

func (rc *clusterReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(rc.secret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	if err != nil {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	rc.deliveries[id] = append(rc.deliveries[id], time.Now())
	if len(rc.deliveries[id]) == 1 {
		var msg struct{ Sequence float64 }
		json.Unmarshal(body, &msg)
		rc.sequences = append(rc.sequences, msg.Sequence)
	}
}

func (rc *clusterReceiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.deliveries)
}

// check wants every message received, in order, and each once, but for
// the one a replica killed at killedAt may have had in flight: one message
// per endpoint is in flight in the whole cluster, and a replica killed after
// the receiver's answer and before logging it leaves the message to be sent
// again (at least once, the same webhook-id). So a message received twice
// must have been answered first before the kill, and keyd's log
// (loggedAttempts) must hold only the second delivery.
func (rc *clusterReceiver) check(t *testing.T, want int, killedAt time.Time, loggedAttempts map[string]int) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.bad != 0 {
		t.Fatalf("%d messages failed signature verification", rc.bad)
	}
	if len(rc.deliveries) != want {
		t.Fatalf("%d distinct messages received, want %d", len(rc.deliveries), want)
	}
	redelivered := 0
	for id, answered := range rc.deliveries {
		switch {
		case len(answered) == 1:
			if loggedAttempts[id] != 1 {
				t.Errorf("message %s was received once, but keyd logged %d attempts", id, loggedAttempts[id])
			}
		case len(answered) == 2 && answered[0].Before(killedAt) && loggedAttempts[id] == 1:
			redelivered++
		default:
			t.Errorf("message %s received %d times (first at %s, the kill at %s), keyd logged %d attempts",
				id, len(answered), answered[0].Format(time.StampMicro), killedAt.Format(time.StampMicro), loggedAttempts[id])
		}
	}
	if redelivered == 1 {
		t.Log("the message in flight on the killed replica was sent again by another")
	}
	if redelivered > 1 {
		t.Errorf("%d messages were received twice; only the one in flight on the killed replica may be", redelivered)
	}
	for i := 1; i < len(rc.sequences); i++ {
		if rc.sequences[i] <= rc.sequences[i-1] {
			t.Fatalf("message %d arrived with sequence %v after %v: out of order", i, rc.sequences[i], rc.sequences[i-1])
		}
	}
}

// TestClusterSurvivesDatabaseOutage stops PostgreSQL under validation load:
// the replicas keep validating from memory (the one set to refuse when cut
// off stops once its timeout has passed), writes answer 503
// STORAGE_UNAVAILABLE, and once PostgreSQL is back everything works again
// without a restart.
func TestClusterSurvivesDatabaseOutage(t *testing.T) {
	c := startCluster(t, 2)
	refusing := c.start("--when-cut-off", "refuse")
	serving := c.replicas
	_, primary := newClusterAccount(t, serving[0], "outage", 100)
	var alias struct{ Key string }
	serving[0].call(t, "POST", "/v1/aliases", primary, map[string]any{"name": "before"}, &alias)

	// Validation load on the replicas that serve when cut off.
	stop := make(chan struct{})
	var validated, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if validates(t, serving[i%2], alias.Key) {
					validated.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}

	if err := c.pg.Pause(); err != nil {
		t.Fatal(err)
	}
	code, out := send(t, "POST", serving[0].url+"/v1/aliases", primary, map[string]any{"name": "during"})
	if code != http.StatusServiceUnavailable || out["error"].(map[string]any)["code"] != "STORAGE_UNAVAILABLE" {
		t.Fatalf("a write with PostgreSQL down: %d %v, want 503 STORAGE_UNAVAILABLE", code, out)
	}
	if !validates(t, refusing, alias.Key) {
		t.Fatal("the refusing replica refused before its timeout")
	}
	time.Sleep(4 * time.Second) // past --replica-timeout
	code, out = send(t, "POST", refusing.url+"/v1/validate", "", map[string]any{"key": alias.Key})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("the replica set to refuse when cut off, cut off past its timeout: %d %v, want 503", code, out)
	}
	duringOutage := validated.Load()

	if err := c.pg.Resume(); err != nil {
		t.Fatal(err)
	}
	var after struct{ Key string }
	waitUntil(t, "writes to work again", 30*time.Second, func() bool {
		code, out := send(t, "POST", serving[1].url+"/v1/aliases", primary, map[string]any{"name": "after"})
		if code == http.StatusCreated {
			after.Key = out["key"].(string)
		}
		return code == http.StatusCreated
	})
	// The first change after the outage may come before the others have
	// reached the database again, when none of them counts as live: they
	// catch up on their next pass.
	waitUntil(t, "the other replicas to catch up", 10*time.Second, func() bool {
		return validates(t, serving[0], after.Key) && validates(t, refusing, after.Key)
	})
	// Back in step, a change is again on every replica by the time it is
	// answered.
	var again struct{ Key string }
	serving[0].call(t, "POST", "/v1/aliases", primary, map[string]any{"name": "again"}, &again)
	for _, p := range []*keydProcess{serving[1], refusing} {
		if !validates(t, p, again.Key) {
			t.Fatalf("an alias made once the replicas were back is refused on %s", p.url)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || duringOutage == 0 {
		t.Fatalf("validations under load: %d failed, %d succeeded by the end of the outage; want none failed", failed.Load(), duringOutage)
	}
}

// TestClusterReplicaKilledUnderLoad kills one of three replicas with
// SIGKILL under validations, charges and changes: the others keep serving,
// and nothing acknowledged is lost.
func TestClusterReplicaKilledUnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	r := c.replicas
	accountID, primary := newClusterAccount(t, r[0], "killed", 1_000_000)

	stop := make(chan struct{})
	var (
		mu           sync.Mutex
		aliases      []string // acknowledged
		charged      int64    // acknowledged
		unanswered   int64    // charges with no answer: charged or not
		failedOthers atomic.Int64
		wg           sync.WaitGroup
	)
	for w := range 6 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p := r[(w+n)%3]
				survivor := p != r[2]
				switch n % 3 {
				case 0:
					if !validates(t, p, primary) && survivor {
						failedOthers.Add(1)
					}
				case 1:
					code, _ := send(t, "POST", p.url+"/v1/usage", primary, map[string]any{"units": 1})
					mu.Lock()
					switch {
					case code == http.StatusOK:
						charged++
					case code == 0:
						unanswered++
					case survivor:
						failedOthers.Add(1)
					}
					mu.Unlock()
				case 2:
					code, out := send(t, "POST", p.url+"/v1/aliases", primary, map[string]any{"name": fmt.Sprintf("w%d n%d", w, n)})
					if code == http.StatusCreated {
						mu.Lock()
						aliases = append(aliases, out["key"].(string))
						mu.Unlock()
					} else if code != 0 && survivor {
						failedOthers.Add(1)
					}
				}
			}
		})
	}
	time.Sleep(2 * time.Second)
	if err := r[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r[2].done
	time.Sleep(5 * time.Second) // past --replica-timeout: the survivors stop waiting for it
	close(stop)
	wg.Wait()

	if n := failedOthers.Load(); n != 0 {
		t.Fatalf("%d requests to the surviving replicas failed", n)
	}
	pool := int64(poolOf(t, r[0], accountID))
	if spent := 1_000_000 - pool; spent < charged || spent > charged+unanswered {
		t.Fatalf("%d credits spent; %d charges acknowledged and %d unanswered", spent, charged, unanswered)
	}
	for _, key := range aliases {
		if !validates(t, r[1], key) {
			t.Fatalf("an acknowledged alias is missing")
		}
	}
	if charged == 0 || len(aliases) == 0 {
		t.Fatalf("the load made %d charges and %d aliases", charged, len(aliases))
	}
}
