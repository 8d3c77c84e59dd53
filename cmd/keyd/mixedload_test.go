package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"keyd/store"
)

// The mixed load drives a real keyd the way its users do, from several
// goroutines at once: site plugins validating and spending, owners creating,
// deactivating, reactivating and deleting aliases and resetting their primary
// key, webhooks going out to a real receiver. Each worker owns one account
// and works it one request at a time, so it knows exactly what every
// acknowledged answer claims (alias X is active, the pool holds C credits,
// the old primary is revoked) and checks each validation against it; all
// workers also spend concurrently from one shared pool. A request whose
// answer never came (keyd was killed) leaves its change uncertain, and the
// model remembers what it may have done.

// loadClient sends requests to keyd.
type loadClient struct {
	base   string
	client *http.Client
}

func newLoadClient(base string) *loadClient {
	return &loadClient{base: base, client: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}}
}

// answer is what keyd said.
type answer struct {
	status int
	body   []byte
	header http.Header
}

func (a answer) code() string {
	var b struct {
		Code  string
		Error struct{ Code string }
	}
	json.Unmarshal(a.body, &b)
	if b.Code != "" {
		return b.Code
	}
	return b.Error.Code
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, bytes.TrimSpace(a.body)) }

// do sends a JSON body (or none) with key as X-API-Key, or as a bearer token
// when bearer is set.
func (lc *loadClient) do(ctx context.Context, method, path, key string, bearer bool, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, lc.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case key == "":
	case bearer:
		req.Header.Set("Authorization", "Bearer "+key)
	default:
		req.Header.Set("X-API-Key", key)
	}
	return lc.send(req)
}

// validate posts a key the way WordPress does: a form.
func (lc *loadClient) validate(ctx context.Context, key, site string) (answer, error) {
	form := url.Values{"key": {key}, "site": {site}, "plugin": {"load-test"}, "plugin_version": {"1.0"}, "wp_version": {"6.5"}}
	req, err := http.NewRequestWithContext(ctx, "POST", lc.base+"/v1/validate", strings.NewReader(form.Encode()))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return lc.send(req)
}

func (lc *loadClient) send(req *http.Request) (answer, error) {
	resp, err := lc.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, body: b, header: resp.Header}, nil
}

// mustDo is do for set-up steps that must succeed.
func (lc *loadClient) mustDo(t testing.TB, method, path, key string, bearer bool, body, out any) {
	t.Helper()
	a, err := lc.do(context.Background(), method, path, key, bearer, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if a.status >= 300 {
		t.Fatalf("%s %s: %s", method, path, a)
	}
	if out != nil {
		if err := json.Unmarshal(a.body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, a.body)
		}
	}
}

// hookReceiver verifies every webhook with the reference Standard Webhooks
// library (one secret per account, the account id is the path) and records
// the message ids it acknowledged. It answers after a short random pause,
// so that deliveries are in flight when keyd is killed.
type hookReceiver struct {
	mu      sync.Mutex
	secrets map[string]*standardwebhooks.Webhook // path -> verifier
	acked   map[string]string                    // message id -> event type
	dups    int
	bad     int
}

func newHookReceiver() *hookReceiver {
	return &hookReceiver{secrets: map[string]*standardwebhooks.Webhook{}, acked: map[string]string{}}
}

func (rc *hookReceiver) setSecret(t testing.TB, path, secret string) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.secrets[path] = wh
	rc.mu.Unlock()
}

func (rc *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	wh := rc.secrets[r.URL.Path]
	rc.mu.Unlock()
	if wh == nil || wh.Verify(body, r.Header) != nil {
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	select {
	case <-time.After(time.Duration(rand.IntN(20)) * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	var payload struct{ Type string }
	json.Unmarshal(body, &payload)
	rc.mu.Lock()
	id := r.Header.Get("webhook-id")
	if _, ok := rc.acked[id]; ok {
		rc.dups++
	}
	rc.acked[id] = payload.Type
	rc.mu.Unlock()
}

func (rc *hookReceiver) received(id string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, ok := rc.acked[id]
	return ok
}

func (rc *hookReceiver) counts() (acked, dups, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.acked), rc.dups, rc.bad
}

// Key statuses as validation reports them.
const (
	stActive   = "VALID"
	stInactive = "INACTIVE"
	stRevoked  = "REVOKED"
)

// aliasModel is what the answers so far say of one alias.
type aliasModel struct {
	id, secret, name string
	status           string   // acknowledged
	maybe            []string // set when a change is unacknowledged: any of these
}

func (a *aliasModel) allowed() []string {
	if a.maybe != nil {
		return a.maybe
	}
	return []string{a.status}
}

// charge is an acknowledged debit.
type charge struct {
	idemKey      string
	units        int64
	creditsAfter int64
}

// accountModel is what the answers so far say of one account.
type accountModel struct {
	id         string
	primary    string   // the acknowledged primary key
	maybeNew   bool     // a reset is unacknowledged: the primary may be revoked
	revoked    []string // primaries replaced by acknowledged resets
	aliases    []*aliasModel
	start      int64 // credits at the start
	acked      int64 // units of acknowledged debits
	inFlight   int64 // units of debits whose answer never came
	charges    []charge
	webhookID  string
	nextSerial int
}

// sharedPool is the account every worker spends from at once.
type sharedPool struct {
	id, key  string
	start    int64
	mu       sync.Mutex
	acked    int64
	inFlight int64
}

// loadStats counts answers by kind and outcome.
type loadStats struct {
	mu       sync.Mutex
	byOp     map[string]int
	byDesign map[string]int // "op status code" answers the scenario provokes
	failures []string       // unexpected answers, 5xx, transport errors
	dropped  int            // failures not kept in full
}

func newLoadStats() *loadStats { return &loadStats{byOp: map[string]int{}, byDesign: map[string]int{}} }

func (s *loadStats) ok(op string) {
	s.mu.Lock()
	s.byOp[op]++
	s.mu.Unlock()
}

func (s *loadStats) designed(op string, a answer) {
	s.mu.Lock()
	s.byOp[op]++
	s.byDesign[fmt.Sprintf("%s %d %s", op, a.status, a.code())]++
	s.mu.Unlock()
}

func (s *loadStats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) < 50 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	} else {
		s.dropped++
	}
}

func (s *loadStats) failed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.failures)
	if s.dropped > 0 {
		out = append(out, fmt.Sprintf("... and %d more", s.dropped))
	}
	return out
}

func (s *loadStats) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.byOp {
		n += v
	}
	return n
}

// mixedLoad is the scenario: its accounts, the receiver and the models.
type mixedLoad struct {
	lc       *loadClient
	hookURL  string
	rc       *hookReceiver
	accounts []*accountModel
	pool     *sharedPool
	// tiny has a few credits, so spending from it runs into 402 by design;
	// free is on the free plan, so validating it often runs into 429.
	tiny, free struct{ id, key string }
	stats      *loadStats
	// stopping is set before keyd is killed or the load ends: from then on
	// a transport error is an unacknowledged request, not a failure.
	stopping atomic.Bool
	// maxAliases bounds each account's live aliases, so the key count and
	// keyd's memory stay level over a long run.
	maxAliases int
}

const accountCredits = 1_000_000_000

// setUpMixedLoad creates the accounts (enterprise plan: no rate limit, a
// large alias limit), the shared pool and a webhook per account.
func setUpMixedLoad(t testing.TB, lc *loadClient, hookURL string, rc *hookReceiver, workers int) *mixedLoad {
	t.Helper()
	ml := &mixedLoad{lc: lc, hookURL: hookURL, rc: rc, stats: newLoadStats(), maxAliases: 40}
	newAccount := func(name, plan string, credits int64) (id, key string) {
		var created struct {
			Account struct{ ID string }
			Key     string
		}
		lc.mustDo(t, "POST", "/admin/v1/accounts", crashTestAdminToken, true,
			map[string]any{"name": name, "email": "owner@load.test", "plan": plan, "credits": credits}, &created)
		if plan == "enterprise" {
			lc.mustDo(t, "PATCH", "/admin/v1/accounts/"+created.Account.ID, crashTestAdminToken, true, map[string]any{"alias_limit": 100000}, nil)
		}
		return created.Account.ID, created.Key
	}
	for i := range workers {
		a := &accountModel{start: accountCredits}
		a.id, a.primary = newAccount(fmt.Sprintf("Load %d", i), "enterprise", accountCredits)
		var hook struct {
			Webhook struct{ ID string }
			Secret  string
		}
		path := "/hook/" + a.id
		lc.mustDo(t, "POST", "/v1/webhooks", a.primary, false,
			map[string]any{"url": hookURL + path, "events": []string{"key.*", "alias.*"}}, &hook)
		rc.setSecret(t, path, hook.Secret)
		a.webhookID = hook.Webhook.ID
		ml.accounts = append(ml.accounts, a)
	}
	ml.pool = &sharedPool{start: accountCredits}
	ml.pool.id, ml.pool.key = newAccount("Shared pool", "enterprise", accountCredits)
	ml.tiny.id, ml.tiny.key = newAccount("Tiny", "enterprise", 100)
	ml.free.id, ml.free.key = newAccount("Free", "free", 0)
	return ml
}

// run drives the load with one goroutine per account until ctx ends or
// stopping is set. pace, when positive, is the pause between one worker's
// requests.
func (ml *mixedLoad) run(ctx context.Context, pace time.Duration) {
	var wg sync.WaitGroup
	for i, a := range ml.accounts {
		wg.Go(func() {
			w := &loadWorker{ml: ml, a: a, rnd: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))}
			for ctx.Err() == nil && !ml.stopping.Load() {
				if !w.step(ctx) {
					return
				}
				if pace > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(pace):
					}
				}
			}
		})
	}
	wg.Wait()
}

type loadWorker struct {
	ml  *mixedLoad
	a   *accountModel
	rnd *rand.Rand
}

// outcome sorts out a request's result: ok reports a 2xx. A transport error
// while stopping means the answer never came (lost reports true); any other
// transport error and every 5xx are failures.
func (w *loadWorker) outcome(op string, a answer, err error) (ok, lost bool) {
	if err != nil {
		if w.ml.stopping.Load() || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false, true
		}
		w.ml.stats.fail("%s: %v", op, err)
		return false, true
	}
	if a.status >= 500 {
		w.ml.stats.fail("%s: %s", op, a)
		return false, false
	}
	if a.status < 300 {
		w.ml.stats.ok(op)
		return true, false
	}
	return false, false
}

// unexpected records an answer the model did not allow.
func (w *loadWorker) unexpected(op string, a answer, want string) {
	w.ml.stats.fail("%s (account %s): got %s, want %s", op, w.a.id, a, want)
}

// step makes one request; false stops the worker (its last request's
// answer never came, which leaves the model uncertain).
func (w *loadWorker) step(ctx context.Context) bool {
	switch r := w.rnd.IntN(100); {
	case r < 40:
		return w.validate(ctx)
	case r < 52:
		return w.spend(ctx)
	case r < 62:
		return w.spendShared(ctx)
	case r < 65:
		return w.replay(ctx)
	case r < 74:
		return w.createAlias(ctx)
	case r < 84:
		return w.setAliasStatus(ctx)
	case r < 90:
		return w.deleteAlias(ctx)
	case r < 92:
		return w.reset(ctx)
	default:
		return w.designedFailure(ctx)
	}
}

// validate checks a random key of the account against the model.
func (w *loadWorker) validate(ctx context.Context) bool {
	key, want, name := w.a.primary, stActive, "primary"
	switch n := len(w.a.aliases); {
	case len(w.a.revoked) > 0 && w.rnd.IntN(10) == 0:
		key, want, name = w.a.revoked[w.rnd.IntN(len(w.a.revoked))], stRevoked, "replaced primary"
	case n > 0 && w.rnd.IntN(4) != 0:
		// Mostly aliases that are not deleted, as sites would present.
		al := w.a.aliases[w.rnd.IntN(n)]
		if live := w.liveAliases(); len(live) > 0 && w.rnd.IntN(4) != 0 {
			al = live[w.rnd.IntN(len(live))]
		}
		key, want, name = al.secret, al.status, "alias "+al.id
	}
	a, err := w.ml.lc.validate(ctx, key, "https://site.load.test/")
	ok, lost := w.outcome("validate", a, err)
	if lost {
		return !w.ml.stopping.Load()
	}
	if got := a.code(); got != want {
		w.unexpected("validate "+name, a, want)
	} else if !ok {
		w.ml.stats.designed("validate", a)
	}
	return true
}

func (w *loadWorker) idemKey() string {
	w.a.nextSerial++
	return fmt.Sprintf("%s-%d", w.a.id, w.a.nextSerial)
}

// spend debits the account's own pool, with its primary or an active alias.
func (w *loadWorker) spend(ctx context.Context) bool {
	key := w.a.primary
	if al := w.activeAlias(); al != nil && w.rnd.IntN(2) == 0 {
		key = al.secret
	}
	units, idem := int64(1+w.rnd.IntN(5)), w.idemKey()
	a, err := w.ml.lc.do(ctx, "POST", "/v1/usage", key, false, map[string]any{"units": units, "idempotency_key": idem})
	ok, lost := w.outcome("usage", a, err)
	if lost {
		w.a.inFlight += units
		return false
	}
	if !ok {
		w.unexpected("usage", a, "200")
		return true
	}
	var c struct{ Credits, Charged int64 }
	json.Unmarshal(a.body, &c)
	w.a.acked += units
	if want := w.a.start - w.a.acked; c.Credits != want || c.Charged != units {
		w.unexpected("usage", a, fmt.Sprintf("credits %d, charged %d", want, units))
	}
	w.a.charges = append(w.a.charges, charge{idem, units, c.Credits})
	if len(w.a.charges) > 1000 {
		w.a.charges = slices.Delete(w.a.charges, 0, 500)
	}
	return true
}

// spendShared debits the pool every worker spends from.
func (w *loadWorker) spendShared(ctx context.Context) bool {
	p := w.ml.pool
	units := int64(1 + w.rnd.IntN(3))
	a, err := w.ml.lc.do(ctx, "POST", "/v1/usage", p.key, false, map[string]any{"units": units, "idempotency_key": "shared-" + w.idemKey()})
	ok, lost := w.outcome("usage shared", a, err)
	p.mu.Lock()
	defer p.mu.Unlock()
	if lost {
		p.inFlight += units
		return false
	}
	if !ok {
		w.unexpected("usage shared", a, "200")
		return true
	}
	p.acked += units
	var c struct{ Credits, Charged int64 }
	json.Unmarshal(a.body, &c)
	// Other workers' charges commit before and after this one, in an order
	// their answers do not tell.
	if c.Credits > p.start-units || c.Credits < 0 || c.Charged != units {
		w.unexpected("usage shared", a, fmt.Sprintf("credits at most %d, charged %d", p.start-units, units))
	}
	return true
}

// replay repeats an acknowledged charge: the first answer, nothing charged.
func (w *loadWorker) replay(ctx context.Context) bool {
	if len(w.a.charges) == 0 {
		return w.spend(ctx)
	}
	c := w.a.charges[w.rnd.IntN(len(w.a.charges))]
	a, err := w.ml.lc.do(ctx, "POST", "/v1/usage", w.a.primary, false, map[string]any{"units": c.units, "idempotency_key": c.idemKey})
	ok, lost := w.outcome("usage replay", a, err)
	if lost {
		return false // a replay charges nothing either way
	}
	var got struct{ Credits, Charged int64 }
	json.Unmarshal(a.body, &got)
	if !ok || got.Credits != c.creditsAfter || got.Charged != c.units || a.header.Get("Idempotent-Replayed") != "true" {
		w.unexpected("usage replay", a, fmt.Sprintf("the first answer: credits %d, charged %d, replayed", c.creditsAfter, c.units))
	}
	return true
}

func (w *loadWorker) activeAlias() *aliasModel {
	var live []*aliasModel
	for _, al := range w.a.aliases {
		if al.status == stActive {
			live = append(live, al)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[w.rnd.IntN(len(live))]
}

// liveAliases are those not deleted.
func (w *loadWorker) liveAliases() []*aliasModel {
	var live []*aliasModel
	for _, al := range w.a.aliases {
		if al.status != stRevoked {
			live = append(live, al)
		}
	}
	return live
}

func (w *loadWorker) createAlias(ctx context.Context) bool {
	if len(w.liveAliases()) >= w.ml.maxAliases {
		return w.deleteAlias(ctx)
	}
	w.a.nextSerial++
	name := fmt.Sprintf("site %d", w.a.nextSerial)
	a, err := w.ml.lc.do(ctx, "POST", "/v1/aliases", w.a.primary, false, map[string]any{"name": name})
	ok, lost := w.outcome("alias create", a, err)
	if lost {
		return false // an alias we hold no key of may or may not exist
	}
	if !ok {
		w.unexpected("alias create", a, "201")
		return true
	}
	var out struct {
		Alias struct{ ID string }
		Key   string
	}
	json.Unmarshal(a.body, &out)
	w.a.aliases = append(w.a.aliases, &aliasModel{id: out.Alias.ID, secret: out.Key, name: name, status: stActive})
	// Keep the model small over a long run: forget deleted aliases but a few.
	if len(w.a.aliases) > 4*w.ml.maxAliases {
		w.a.aliases = slices.DeleteFunc(w.a.aliases, func(al *aliasModel) bool { return al.status == stRevoked && w.rnd.IntN(2) == 0 })
	}
	return true
}

func (w *loadWorker) setAliasStatus(ctx context.Context) bool {
	live := w.liveAliases()
	if len(live) == 0 {
		return w.createAlias(ctx)
	}
	al := live[w.rnd.IntN(len(live))]
	action, to := "deactivate", stInactive
	if al.status == stInactive {
		action, to = "reactivate", stActive
	}
	a, err := w.ml.lc.do(ctx, "POST", "/v1/aliases/"+al.id+"/"+action, w.a.primary, false, nil)
	ok, lost := w.outcome("alias "+action, a, err)
	if lost {
		al.maybe = []string{al.status, to}
		return false
	}
	if !ok {
		w.unexpected("alias "+action, a, "200")
		return true
	}
	al.status = to
	return true
}

func (w *loadWorker) deleteAlias(ctx context.Context) bool {
	live := w.liveAliases()
	if len(live) == 0 {
		return w.createAlias(ctx)
	}
	al := live[w.rnd.IntN(len(live))]
	a, err := w.ml.lc.do(ctx, "DELETE", "/v1/aliases/"+al.id, w.a.primary, false, nil)
	ok, lost := w.outcome("alias delete", a, err)
	if lost {
		al.maybe = []string{al.status, stRevoked}
		return false
	}
	if !ok {
		w.unexpected("alias delete", a, "204")
		return true
	}
	al.status = stRevoked
	return true
}

// reset replaces the primary key with no grace: the old key must be
// revoked in the same instant as the answer.
func (w *loadWorker) reset(ctx context.Context) bool {
	a, err := w.ml.lc.do(ctx, "POST", "/v1/account/reset-key", w.a.primary, false, map[string]any{"grace_period": "0s"})
	ok, lost := w.outcome("reset", a, err)
	if lost {
		w.a.maybeNew = true
		return false
	}
	if !ok {
		w.unexpected("reset", a, "200")
		return true
	}
	var out struct{ Key string }
	json.Unmarshal(a.body, &out)
	w.a.revoked = append(w.a.revoked, w.a.primary)
	w.a.primary = out.Key
	// The claim of the answer: the old key is dead at once, the new one works.
	if old, err := w.ml.lc.validate(ctx, w.a.revoked[len(w.a.revoked)-1], ""); err == nil && old.code() != stRevoked {
		w.unexpected("validate right after a reset", old, stRevoked)
	}
	if cur, err := w.ml.lc.validate(ctx, w.a.primary, ""); err == nil && cur.code() != stActive {
		w.unexpected("validate the new key right after a reset", cur, stActive)
	}
	if len(w.a.revoked) > 20 {
		w.a.revoked = w.a.revoked[len(w.a.revoked)-20:]
	}
	return true
}

// designedFailure provokes an answer the contract gives by design: 409 for
// a name in use, 402 from a pool too small, 429 past the free plan's limit,
// 401 for a key nobody has. None of them changes anything.
func (w *loadWorker) designedFailure(ctx context.Context) bool {
	var (
		a    answer
		err  error
		op   string
		want []int
	)
	switch w.rnd.IntN(4) {
	case 0:
		live := w.liveAliases()
		if len(live) == 0 {
			return w.createAlias(ctx)
		}
		op, want = "alias create taken name", []int{409}
		a, err = w.ml.lc.do(ctx, "POST", "/v1/aliases", w.a.primary, false, map[string]any{"name": live[0].name})
	case 1:
		op, want = "usage tiny pool", []int{200, 402}
		a, err = w.ml.lc.do(ctx, "POST", "/v1/usage", w.ml.tiny.key, false, map[string]any{"units": 7})
	case 2:
		op, want = "validate free plan", []int{200, 429}
		a, err = w.ml.lc.validate(ctx, w.ml.free.key, "")
	default:
		op, want = "validate unknown key", []int{401}
		a, err = w.ml.lc.validate(ctx, fmt.Sprintf("Unknown%013d", w.rnd.Int64N(1e13)), "")
	}
	ok, lost := w.outcome(op, a, err)
	if lost {
		return !w.ml.stopping.Load()
	}
	if !slices.Contains(want, a.status) {
		w.unexpected(op, a, fmt.Sprint(want))
	} else if !ok {
		w.ml.stats.designed(op, a)
	}
	return true
}

// checkAcknowledged verifies, against a keyd just restarted, that every
// acknowledged change holds: aliases have the status last acknowledged (or
// one an unacknowledged change allows), replaced primaries are revoked, the
// current primary works, acknowledged charges replay without charging.
func (ml *mixedLoad) checkAcknowledged(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for _, acc := range ml.accounts {
		for _, al := range acc.aliases {
			a, err := ml.lc.validate(ctx, al.secret, "https://site.load.test/")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(al.allowed(), a.code()) {
				t.Errorf("account %s alias %s: validate says %s, acknowledged %v", acc.id, al.id, a, al.allowed())
			}
		}
		for _, old := range acc.revoked {
			if a, err := ml.lc.validate(ctx, old, ""); err != nil || a.code() != stRevoked {
				t.Errorf("account %s: a primary replaced by an acknowledged reset validates as %s (%v)", acc.id, a, err)
			}
		}
		a, err := ml.lc.validate(ctx, acc.primary, "")
		if err != nil {
			t.Fatal(err)
		}
		primaryWorks := a.code() == stActive
		if !primaryWorks && !(acc.maybeNew && a.code() == stRevoked) {
			t.Errorf("account %s: the acknowledged primary validates as %s", acc.id, a)
		}
		if !primaryWorks {
			continue
		}
		// Acknowledged charges were made durable with their idempotency keys.
		for _, c := range acc.charges[max(0, len(acc.charges)-5):] {
			a, err := ml.lc.do(ctx, "POST", "/v1/usage", acc.primary, false, map[string]any{"units": c.units, "idempotency_key": c.idemKey})
			if err != nil {
				t.Fatal(err)
			}
			if a.status != 200 || a.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("account %s: charge %s acknowledged before the kill does not replay: %s", acc.id, c.idemKey, a)
			}
		}
	}
}

// checkCredits verifies every pool against the acknowledged debits: no
// acknowledged debit lost, no debit made from nothing.
func (ml *mixedLoad) checkCredits(t testing.TB, db *sql.DB) {
	t.Helper()
	check := func(id string, start, acked, inFlight int64) {
		var credits int64
		if err := db.QueryRow(`SELECT credits FROM accounts WHERE id = ?`, id).Scan(&credits); err != nil {
			t.Fatal(err)
		}
		if hi, lo := start-acked, start-acked-inFlight; credits > hi || credits < lo {
			t.Errorf("account %s holds %d credits; acknowledged debits leave %d, with those unanswered at least %d", id, credits, hi, lo)
		}
	}
	for _, acc := range ml.accounts {
		check(acc.id, acc.start, acc.acked, acc.inFlight)
	}
	check(ml.pool.id, ml.pool.start, ml.pool.acked, ml.pool.inFlight)
}

// undelivered lists, reading the database, every event of the load's
// accounts that an endpoint selects and whose message the receiver has not
// acknowledged (or that has no message yet).
func (ml *mixedLoad) undelivered(db *sql.DB) ([]string, error) {
	var missing []string
	for _, acc := range ml.accounts {
		var (
			patternsJSON string
			afterSeq     int64
		)
		if err := db.QueryRow(`SELECT events, after_seq FROM webhook_endpoints WHERE id = ?`, acc.webhookID).Scan(&patternsJSON, &afterSeq); err != nil {
			return nil, err
		}
		var patterns []string
		if err := json.Unmarshal([]byte(patternsJSON), &patterns); err != nil {
			return nil, err
		}
		rows, err := db.Query(`SELECT e.seq, e.type, coalesce(m.id, '') FROM events e
			LEFT JOIN webhook_messages m ON m.event_seq = e.seq AND m.endpoint_id = ?
			WHERE e.account_id = ? AND e.seq > ? ORDER BY e.seq`, acc.webhookID, acc.id, afterSeq)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				seq      int64
				typ, msg string
			)
			if err := rows.Scan(&seq, &typ, &msg); err != nil {
				rows.Close()
				return nil, err
			}
			if !store.IsWebhookEventType(typ) || !store.MatchEventPatterns(patterns, typ) {
				continue
			}
			if msg == "" || !ml.rc.received(msg) {
				missing = append(missing, fmt.Sprintf("event %d %s of %s (message %q)", seq, typ, acc.id, msg))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// openReadOnly opens the database without writing to it.
func openReadOnly(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
