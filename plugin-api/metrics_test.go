package pluginapi_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"keyd/jobs"
	pluginapi "keyd/plugin-api"
	"keyd/store"
	"keyd/webhooks"
)

// scrape reads m's text exposition into series -> value, the series named
// as written (name{label="value",...}).
func scrape(tb testing.TB, m *pluginapi.Metrics) map[string]float64 {
	tb.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("scrape: bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsAfterTraffic(t *testing.T) {
	e := newEnv(t, testToken)
	m := pluginapi.NewMetrics("test")
	m.WatchJobs(func() []jobs.Status {
		return []jobs.Status{{Name: "flush-activity", Runs: 3, Failures: 1}}
	})
	m.WatchOutbox(e.db.PendingMessages)
	m.WatchReplicas(func() store.ReplicaStats { return store.ReplicaStats{Live: 3, CutOff: true, WaitTimeouts: 2} })
	h, err := pluginapi.New(e.db, pluginapi.Config{AdminToken: testToken, Now: e.clock.Now, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h

	_, key := e.createAccount("Metrics", "pro", 100)
	for range 3 {
		if res := e.validateForm(key); res.status != http.StatusOK {
			t.Fatalf("validate: %d %s", res.status, res.raw)
		}
	}
	e.validateForm("AAAAAAAAAAAAAAAAAAAA")                                                         // NOT_FOUND
	e.validateForm("AAAAAAAAAAAAAAAAAAAB")                                                         // NOT_FOUND
	e.validateForm("short")                                                                        // MALFORMED
	e.do(http.MethodPost, "/v1/validate", "application/json", `{}`)                                // INVALID_REQUEST
	e.do(http.MethodPost, "/v1/validate", "application/json", "{"+strings.Repeat(" ", 70<<10)+"}") // 413 INVALID_REQUEST
	for _, idem := range []string{"a", "a", "b"} {                                                 // the replay charges nothing
		res := e.doJSON(http.MethodPost, "/v1/usage", `{"units": 5, "idempotency_key": "`+idem+`"}`, "X-API-Key", key)
		if res.status != http.StatusOK {
			t.Fatalf("usage: %d %s", res.status, res.raw)
		}
	}
	e.doJSON(http.MethodGet, "/v1/account", "", "X-API-Key", key)
	e.do(http.MethodGet, "/no/such/path/12345", "", "")
	e.do("BREW", "/coffee", "", "")
	e.do(http.MethodDelete, "/v1/validate", "", "") // 405

	// A message waiting in the outbox.
	ctx := context.Background()
	acc, err := e.db.CreateAccount(ctx, store.OperatorActor("127.0.0.1"), store.NewAccount{Name: "Hooks", Email: "h@example.com", Plan: "pro"})
	if err != nil {
		t.Fatal(err)
	}
	wh, err := e.db.CreateWebhook(ctx, store.SystemActor, acc.Account.ID, store.NewWebhook{URL: "https://receiver.example/hook", Events: []string{"*"}, Secret: webhooks.NewSecret()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SendTestMessage(ctx, store.SystemActor, acc.Account.ID, wh.ID); err != nil {
		t.Fatal(err)
	}
	m.WebhookAttempt("delivered")
	m.WebhookAttempt("retrying")
	m.WebhookAttempt("retrying")

	got := scrape(t, m)
	want := map[string]float64{
		`keyd_http_requests_total{method="POST",route="/admin/v1/accounts",status="201"}`: 1,
		`keyd_http_requests_total{method="POST",route="/v1/validate",status="200"}`:       3,
		`keyd_http_requests_total{method="POST",route="/v1/validate",status="401"}`:       3,
		`keyd_http_requests_total{method="POST",route="/v1/validate",status="400"}`:       1,
		`keyd_http_requests_total{method="POST",route="/v1/validate",status="413"}`:       1,
		`keyd_http_requests_total{method="POST",route="/v1/usage",status="200"}`:          3,
		`keyd_http_requests_total{method="GET",route="/v1/account",status="200"}`:         1,
		`keyd_http_requests_total{method="GET",route="unmatched",status="404"}`:           1,
		`keyd_http_requests_total{method="OTHER",route="unmatched",status="404"}`:         1,
		`keyd_http_requests_total{method="DELETE",route="unmatched",status="405"}`:        1,
		`keyd_validations_total{code="VALID"}`:                                            3,
		`keyd_validations_total{code="NOT_FOUND"}`:                                        2,
		`keyd_validations_total{code="MALFORMED"}`:                                        1,
		`keyd_validations_total{code="INVALID_REQUEST"}`:                                  2,
		`keyd_validations_total{code="REVOKED"}`:                                          0,
		`keyd_validate_duration_seconds_count`:                                            8,
		`keyd_validate_duration_seconds_bucket{le="+Inf"}`:                                8,
		`keyd_credits_spent_total`:                                                        10,
		`keyd_webhook_deliveries_total{outcome="delivered"}`:                              1,
		`keyd_webhook_deliveries_total{outcome="retrying"}`:                               2,
		`keyd_webhook_deliveries_total{outcome="gone"}`:                                   0,
		`keyd_webhook_outbox_pending`:                                                     1,
		`keyd_job_runs_total{job="flush-activity"}`:                                       3,
		`keyd_job_failures_total{job="flush-activity"}`:                                   1,
		`keyd_build_info{version="test"}`:                                                 1,
		`keyd_replicas_live`:                                                              3,
		`keyd_replica_cut_off`:                                                            1,
		`keyd_replica_wait_timeouts_total`:                                                2,
	}
	for series, v := range want {
		if g, ok := got[series]; !ok {
			t.Errorf("%s is missing", series)
		} else if g != v {
			t.Errorf("%s = %v, want %v", series, g, v)
		}
	}
	for series := range got {
		if strings.Contains(series, "/no/such") || strings.Contains(series, "BREW") || strings.Contains(series, key) {
			t.Errorf("a raw path, method or key leaked into %s", series)
		}
	}
	for _, prefix := range []string{"go_goroutines", "process_"} {
		found := false
		for series := range got {
			found = found || strings.HasPrefix(series, prefix)
		}
		if !found {
			t.Errorf("no %s* series: the Go and process collectors are missing", prefix)
		}
	}
}
