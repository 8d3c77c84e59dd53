package pluginapi

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"keyd/jobs"
	"keyd/store"
)

// Metrics are the Prometheus series keyd exports, all listed here, on a
// registry of their own (never the global one). The HTTP series are counted
// by the request middleware; the webhook worker reports its attempts through
// WebhookAttempt; jobs and the outbox are read when scraped.
//
// Requests are counted by gin's route pattern, never the raw path, so the
// number of series stays bounded whatever clients send.
type Metrics struct {
	reg *prometheus.Registry

	requests         *prometheus.CounterVec
	validateDuration prometheus.Histogram
	validations      *prometheus.CounterVec
	validationByCode map[string]prometheus.Counter // pre-resolved, read-only
	creditsSpent     prometheus.Counter
	webhookAttempts  *prometheus.CounterVec
	webhookByOutcome map[string]prometheus.Counter // pre-resolved, read-only
}

// Validation outcomes counted from the start, so each series exists at 0.
var validationCodes = []string{
	codeValid, codeInvalidRequest, codeMalformed, codeNoKey, codeRevoked, codeExpired, codeInactive,
	codeAccountSuspended, codeScopeDenied, codeSiteNotAllowed, codeRateLimited, codeInternal,
}

// Webhook attempt outcomes, as the worker reports them.
var webhookOutcomes = []string{"delivered", "retrying", "failed", "gone"}

// NewMetrics makes keyd's metrics on a new registry with the Go runtime and
// process collectors. version labels keyd_build_info.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyd_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern (\"unmatched\" for no route) and status code.",
		}, []string{"method", "route", "status"}),
		validateDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyd_validate_duration_seconds",
			Help:    "Time to answer POST /v1/validate, from the first middleware to the last byte handed to the server.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyd_validations_total",
			Help: "Answers of POST /v1/validate by code (VALID, NOT_FOUND, REVOKED, ...).",
		}, []string{"code"}),
		creditsSpent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyd_credits_spent_total",
			Help: "Credit units charged through POST /v1/usage (replays of an idempotency key charge nothing).",
		}),
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyd_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), retrying (failed, another try scheduled), failed (no tries left), gone (410, endpoint disabled).",
		}, []string{"outcome"}),
		validationByCode: map[string]prometheus.Counter{},
		webhookByOutcome: map[string]prometheus.Counter{},
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "keyd_build_info",
		Help:        "Always 1; the version label is keyd's version.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.requests, m.validateDuration, m.validations, m.creditsSpent, m.webhookAttempts, buildInfo)
	for _, code := range validationCodes {
		m.validationByCode[code] = m.validations.WithLabelValues(code)
	}
	for _, o := range webhookOutcomes {
		m.webhookByOutcome[o] = m.webhookAttempts.WithLabelValues(o)
	}
	return m
}

// Registry is where the metrics are registered, for tests and for adding more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format. A collector that
// fails (the database not answering) is reported and the rest still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Registry: m.reg})
}

// WebhookAttempt counts one recorded delivery attempt by its outcome (see
// webhookOutcomes). It is safe to call on a nil *Metrics.
func (m *Metrics) WebhookAttempt(outcome string) {
	if m == nil {
		return
	}
	if c, ok := m.webhookByOutcome[outcome]; ok {
		c.Inc()
		return
	}
	m.webhookAttempts.WithLabelValues(outcome).Inc()
}

// creditsCharged counts units charged by a spend.
func (m *Metrics) creditsCharged(units int64) {
	if m != nil && units > 0 {
		m.creditsSpent.Add(float64(units))
	}
}

// WatchJobs exports each job's runs and failures, read from statuses when
// scraped (the scheduler counts them already).
func (m *Metrics) WatchJobs(statuses func() []jobs.Status) {
	m.reg.MustRegister(jobsCollector{statuses})
}

// WatchOutbox exports the number of webhook messages waiting to be
// delivered, asked of pending when scraped.
func (m *Metrics) WatchOutbox(pending func(ctx context.Context) (int, error)) {
	m.reg.MustRegister(outboxCollector{pending})
}

// WatchLogDrops exports the number of log lines dropped because the log's
// output was slower than lines came, read from dropped when scraped.
func (m *Metrics) WatchLogDrops(dropped func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "keyd_log_lines_dropped_total",
		Help: "Log lines dropped because the log's output (stderr) was slower than lines came; keyd never waits for it.",
	}, func() float64 { return float64(dropped()) }))
}

// WatchReplicas exports what this replica knows of the others sharing its
// PostgreSQL database, asked of replicas when scraped.
func (m *Metrics) WatchReplicas(replicas func() store.ReplicaStats) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyd_replicas_live",
			Help: "keyd replicas heard from within --replica-timeout, this one included (1 on SQLite).",
		}, func() float64 { return float64(replicas().Live) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyd_replica_cut_off",
			Help: "1 while this replica has not reached the database for longer than --replica-timeout.",
		}, func() float64 {
			if replicas().CutOff {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyd_replica_wait_timeouts_total",
			Help: "Changes answered before every live replica had applied them, their --replica-wait having run out.",
		}, func() float64 { return float64(replicas().WaitTimeouts) }),
	)
}

var (
	jobRunsDesc = prometheus.NewDesc("keyd_job_runs_total",
		"Runs of each scheduled job since keyd started, failed ones included.", []string{"job"}, nil)
	jobFailuresDesc = prometheus.NewDesc("keyd_job_failures_total",
		"Failed runs (an error or a panic) of each scheduled job since keyd started.", []string{"job"}, nil)
	outboxPendingDesc = prometheus.NewDesc("keyd_webhook_outbox_pending",
		"Webhook messages waiting for delivery (due now or retrying later).", nil, nil)
)

type jobsCollector struct{ statuses func() []jobs.Status }

func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobRunsDesc
	ch <- jobFailuresDesc
}

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.statuses() {
		ch <- prometheus.MustNewConstMetric(jobRunsDesc, prometheus.CounterValue, float64(st.Runs), st.Name)
		ch <- prometheus.MustNewConstMetric(jobFailuresDesc, prometheus.CounterValue, float64(st.Failures), st.Name)
	}
}

type outboxCollector struct {
	pending func(ctx context.Context) (int, error)
}

func (c outboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- outboxPendingDesc }

func (c outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.pending(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(outboxPendingDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(outboxPendingDesc, prometheus.GaugeValue, float64(n))
}

// routeMetrics are one route's counters, resolved once per status code so
// that counting a request builds no labels and allocates nothing.
type routeMetrics struct {
	method, route string
	validate      bool // POST /v1/validate: also timed and counted by code
	byStatus      [len(countedStatuses)]atomic.Pointer[prometheus.Counter]
}

// countedStatuses are the statuses keyd answers with; others are counted
// too, through the slower labelled lookup.
var countedStatuses = [...]int{200, 201, 204, 400, 401, 402, 403, 404, 405, 409, 410, 413, 415, 429, 500, 503}

func statusSlot(status int) int {
	for i, s := range countedStatuses {
		if s == status {
			return i
		}
	}
	return -1
}

type routeKey struct{ method, route string }

// unmatchedRoute labels requests no route matched (404s, 405s), so that
// scanners probing random paths add no series.
const unmatchedRoute = "unmatched"

// standardMethods label unmatched requests; any other method counts as OTHER.
var standardMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace}

// requestMetrics holds the pre-resolved counters of one router.
type requestMetrics struct {
	m      *Metrics
	routes map[routeKey]*routeMetrics // read-only after newRequestMetrics
}

func newRequestMetrics(m *Metrics, routes gin.RoutesInfo) *requestMetrics {
	rm := &requestMetrics{m: m, routes: map[routeKey]*routeMetrics{}}
	for _, r := range routes {
		rm.routes[routeKey{r.Method, r.Path}] = &routeMetrics{method: r.Method, route: r.Path,
			validate: r.Method == http.MethodPost && r.Path == "/v1/validate"}
	}
	for _, method := range append(standardMethods, "OTHER") {
		rm.routes[routeKey{method, ""}] = &routeMetrics{method: method, route: unmatchedRoute}
	}
	return rm
}

// observe counts a finished request. c.FullPath() is the matched route
// pattern, empty when none matched.
func (rm *requestMetrics) observe(c *gin.Context, start time.Time) {
	r := rm.routes[routeKey{c.Request.Method, c.FullPath()}]
	if r == nil { // no route matched, and the method is not a standard one
		r = rm.routes[routeKey{"OTHER", ""}]
	}
	status := c.Writer.Status()
	if slot := statusSlot(status); slot >= 0 {
		p := r.byStatus[slot].Load()
		if p == nil {
			ctr := rm.m.requests.WithLabelValues(r.method, r.route, strconv.Itoa(status))
			p = &ctr
			r.byStatus[slot].Store(p)
		}
		(*p).Inc()
	} else {
		rm.m.requests.WithLabelValues(r.method, r.route, strconv.Itoa(status)).Inc()
	}
	if !r.validate {
		return
	}
	rm.m.validateDuration.Observe(time.Since(start).Seconds())
	code := codeValid
	if status != http.StatusOK {
		code = codeInternal // a panic answers without a validate code
		if v, ok := c.Get(ctxValidateError); ok {
			code = v.(*apiError).Code
		}
	}
	if ctr, ok := rm.m.validationByCode[code]; ok {
		ctr.Inc()
	} else {
		rm.m.validations.WithLabelValues(code).Inc()
	}
}
