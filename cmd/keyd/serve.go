package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"keyd/jobs"
	pluginapi "keyd/plugin-api"
	"keyd/store"
)

// minAdminTokenLength keeps the operator's token out of guessing range.
const minAdminTokenLength = 32

type serveConfig struct {
	addr, db                   string
	adminToken, adminTokenFile string
	logFormat, logLevel        string
	flushEvery, expireEvery    string
	expiringLead               time.Duration
	scopes                     string
	indexSnapshot              string // "" = next to the database, "off" = none
	pprofAddr                  string
	metricsAddr                string
	trustedProxies             string
	compatSPIO                 bool
	testKeys                   bool
	receiptTTL                 string
	receiptLifetime            time.Duration // receiptTTL read
	shutdownTimeout            time.Duration
	slowRequest                time.Duration
	limits                     serverLimits
	webhooks                   webhookConfig
	replicas                   store.ReplicaSettings
	whenCutOff                 string // serve or refuse, read into replicas
}

// serverLimits bound what one client connection may hold of the server.
type serverLimits struct {
	readHeaderTimeout, readTimeout, writeTimeout, idleTimeout time.Duration
	maxHeaderBytes                                            int
}

func runServe(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "serve", "serve [flags]")
	var cfg serveConfig
	fs.StringVar(&cfg.addr, "addr", envOr(e, "KEYD_ADDR", "127.0.0.1:8080"), "address to listen on (env KEYD_ADDR)")
	dbPath := dbFlag(e, fs)
	fs.StringVar(&cfg.adminToken, "admin-token", e.getenv("KEYD_ADMIN_TOKEN"), "operator token for /admin/v1; empty turns the admin API off (env KEYD_ADMIN_TOKEN)")
	fs.StringVar(&cfg.adminTokenFile, "admin-token-file", e.getenv("KEYD_ADMIN_TOKEN_FILE"), "file holding the operator token (env KEYD_ADMIN_TOKEN_FILE)")
	fs.StringVar(&cfg.logFormat, "log-format", envOr(e, "KEYD_LOG_FORMAT", "text"), "log format: text or json (env KEYD_LOG_FORMAT)")
	fs.StringVar(&cfg.logLevel, "log-level", envOr(e, "KEYD_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env KEYD_LOG_LEVEL)")
	fs.StringVar(&cfg.flushEvery, "flush-schedule", envOr(e, "KEYD_FLUSH_SCHEDULE", "@every 1m"), "when to write last-used times and counters (env KEYD_FLUSH_SCHEDULE)")
	fs.StringVar(&cfg.expireEvery, "expire-schedule", envOr(e, "KEYD_EXPIRE_SCHEDULE", "@every 1m"), "when to expire aliases and retire reset keys (env KEYD_EXPIRE_SCHEDULE)")
	fs.DurationVar(&cfg.expiringLead, "expiring-lead", 24*time.Hour, "how long before an alias expires to send alias.expiring")
	fs.StringVar(&cfg.scopes, "scopes", e.getenv("KEYD_SCOPES"), "comma-separated scope catalogue; empty accepts any scope name (env KEYD_SCOPES)")
	fs.StringVar(&cfg.indexSnapshot, "index-snapshot", e.getenv("KEYD_INDEX_SNAPSHOT"), "file keeping the key index, for a start-up in seconds (README, Start-up); default: the database's path with .index added; off for none (env KEYD_INDEX_SNAPSHOT)")
	fs.StringVar(&cfg.pprofAddr, "pprof", e.getenv("KEYD_PPROF"), "serve Go profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060; off when empty (env KEYD_PPROF)")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", e.getenv("KEYD_METRICS_ADDR"), "serve Prometheus metrics at /metrics on this address, apart from the API, e.g. 127.0.0.1:9090; off when empty (env KEYD_METRICS_ADDR)")
	fs.StringVar(&cfg.trustedProxies, "trusted-proxies", e.getenv("KEYD_TRUSTED_PROXIES"), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed; none by default (env KEYD_TRUSTED_PROXIES)")
	compat := true
	if v := e.getenv("KEYD_COMPAT_SPIO"); v != "" {
		var err error
		if compat, err = strconv.ParseBool(v); err != nil {
			return usagef("KEYD_COMPAT_SPIO must be 1 or 0, not %q", v)
		}
	}
	fs.BoolVar(&cfg.compatSPIO, "compat-spio", compat, "answer ShortPixel-style key checks at /v2/api-status.php; --compat-spio=false turns the route off (env KEYD_COMPAT_SPIO)")
	fs.StringVar(&cfg.receiptTTL, "receipt-ttl", envOr(e, "KEYD_RECEIPT_TTL", "72h"), receiptTTLFlag)
	testKeys, _ := strconv.ParseBool(e.getenv("KEYD_TEST_KEYS"))
	fs.BoolVar(&cfg.testKeys, "test-keys", testKeys, "accept the published test keys, each giving one fixed answer (README, Test keys); for development and staging only (env KEYD_TEST_KEYS=1)")
	fs.DurationVar(&cfg.slowRequest, "slow-request", time.Second, "log every request that takes at least this long, at warn")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish on shutdown")
	def := defaultLimits()
	fs.DurationVar(&cfg.limits.readHeaderTimeout, "read-header-timeout", def.readHeaderTimeout, "how long a client may take to send a request's headers")
	fs.DurationVar(&cfg.limits.readTimeout, "read-timeout", def.readTimeout, "how long a client may take to send a whole request")
	fs.DurationVar(&cfg.limits.writeTimeout, "write-timeout", def.writeTimeout, "how long answering a request may take, from the end of its headers")
	fs.DurationVar(&cfg.limits.idleTimeout, "idle-timeout", def.idleTimeout, "how long an idle keep-alive connection is kept open")
	fs.IntVar(&cfg.limits.maxHeaderBytes, "max-header-bytes", def.maxHeaderBytes, "largest request header accepted in bytes (larger ones are answered 431)")
	addWebhookFlags(e, fs, &cfg.webhooks)
	replicaTimeout, err := envDuration(e, "KEYD_REPLICA_TIMEOUT", store.DefaultReplicaSettings.Timeout)
	if err != nil {
		return err
	}
	replicaWait, err := envDuration(e, "KEYD_REPLICA_WAIT", store.DefaultReplicaSettings.Wait)
	if err != nil {
		return err
	}
	fs.DurationVar(&cfg.replicas.Timeout, "replica-timeout", replicaTimeout, "PostgreSQL: how long a replica not heard from is still waited for by changes, and how long a replica cut off from the database is counted live (README, Running several replicas) (env KEYD_REPLICA_TIMEOUT)")
	fs.DurationVar(&cfg.replicas.Wait, "replica-wait", replicaWait, "PostgreSQL: how long a change waits for every live replica to apply it before it is answered; 0 (default) as long as --replica-timeout (env KEYD_REPLICA_WAIT)")
	fs.StringVar(&cfg.whenCutOff, "when-cut-off", envOr(e, "KEYD_WHEN_CUT_OFF", "serve"), "PostgreSQL: what a replica that has not reached the database for --replica-timeout does with validations: serve (from what it knows) or refuse (503) (env KEYD_WHEN_CUT_OFF)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.db = *dbPath
	if cfg.receiptLifetime, err = parseReceiptTTL(cfg.receiptTTL); err != nil {
		return err
	}
	if cfg.pprofAddr != "" && !isLoopbackAddr(cfg.pprofAddr) {
		return usagef("--pprof must be a loopback address such as 127.0.0.1:6060, not %q: profiles reveal memory contents", cfg.pprofAddr)
	}
	if l := cfg.limits; l.readHeaderTimeout <= 0 || l.readTimeout <= 0 || l.writeTimeout <= 0 || l.idleTimeout <= 0 || l.maxHeaderBytes <= 0 {
		return usagef("--read-header-timeout, --read-timeout, --write-timeout, --idle-timeout and --max-header-bytes must be positive")
	}
	if cfg.expiringLead <= 0 || cfg.shutdownTimeout <= 0 {
		return usagef("--expiring-lead and --shutdown-timeout must be positive")
	}
	if cfg.webhooks.workers < 1 {
		return usagef("--webhook-workers must be at least 1")
	}
	for flag, addr := range map[string]string{"--addr": cfg.addr, "--metrics-addr": cfg.metricsAddr} {
		if err := checkAddr(flag, addr); err != nil {
			return err
		}
	}

	if cfg.slowRequest <= 0 {
		return usagef("--slow-request must be positive")
	}
	switch cfg.whenCutOff {
	case "serve", "refuse":
		cfg.replicas.RefuseWhenCutOff = cfg.whenCutOff == "refuse"
	default:
		return usagef("--when-cut-off must be serve or refuse, not %q", cfg.whenCutOff)
	}
	if cfg.replicas.Timeout <= 0 || cfg.replicas.Wait < 0 {
		return usagef("--replica-timeout must be positive, and --replica-wait positive or 0")
	}
	if store.IsPostgresURL(cfg.db) {
		if cfg.webhooks.secretKey == "" {
			return usagef("on PostgreSQL give the secret key with --secret-key or KEYD_SECRET_KEY, the same on every replica (README, Running several replicas)")
		}
		if cfg.indexSnapshot != "" && cfg.indexSnapshot != "off" {
			return usagef("--index-snapshot is for SQLite: on PostgreSQL each replica loads the index from the database")
		}
	}
	out := newLogWriter(e.stderr, logBufferBytes)
	defer out.Close()
	log, err := newLogger(out, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	token, err := adminToken(cfg)
	if err != nil {
		return err
	}
	return serve(ctx, e, cfg, token, log, out)
}

func adminToken(cfg serveConfig) (string, error) {
	token := cfg.adminToken
	if cfg.adminTokenFile != "" {
		if token != "" {
			return "", usagef("give the admin token once: --admin-token or --admin-token-file")
		}
		b, err := os.ReadFile(cfg.adminTokenFile)
		if err != nil {
			return "", fmt.Errorf("read admin token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" && len(token) < minAdminTokenLength {
		return "", usagef("the admin token must be at least %d characters (try: openssl rand -hex 32)", minAdminTokenLength)
	}
	return token, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("unknown log level %q (want debug, info, warn or error)", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("unknown log format %q (want text or json)", format)
}

// serve runs keyd until ctx ends; log writes to out.
func serve(ctx context.Context, e env, cfg serveConfig, token string, log *slog.Logger, out *logWriter) error {
	catalogue, err := parseScopes(cfg.scopes)
	if err != nil {
		return err
	}
	hookOpts, err := cfg.webhooks.storeOptions()
	if err != nil {
		return err
	}
	started := time.Now()
	if snapshot := cfg.indexSnapshotPath(); snapshot != "" {
		hookOpts = append(hookOpts, store.WithIndexSnapshot(snapshot))
	}
	db, err := store.Open(ctx, cfg.db, append(hookOpts, store.WithScopes(catalogue), store.WithReplicaSettings(cfg.replicas))...)
	if err != nil {
		return err
	}
	// From here on no change is answered before this replica has it.
	if err := db.JoinReplicas(ctx); err != nil {
		db.Close()
		return err
	}
	if id := db.Replicas().ID; id != "" {
		log.Info("joined the replicas of the database", "replica", id, "live", db.Replicas().Live)
	}
	if err := db.PrepareSecrets(ctx); err != nil {
		db.Close()
		return err
	}
	// The receipt signing key is made now, not by the first validation
	// that asks for a receipt.
	if _, err := db.SigningReceiptKey(ctx); err != nil {
		db.Close()
		return err
	}
	var metrics *pluginapi.Metrics
	if cfg.metricsAddr != "" {
		metrics = pluginapi.NewMetrics(version)
	}
	hooks, err := newWebhookDelivery(db, cfg.webhooks, log, metrics)
	if err != nil {
		db.Close()
		return err
	}
	// Loading the index leaves garbage behind (rows as the driver returned
	// them); hand it back to the OS now rather than carry it as resident
	// memory until the heap happens to shrink.
	debug.FreeOSMemory()
	loaded := db.LoadStats()
	log.Info("database open", "path", store.RedactedDSN(cfg.db), "keys_in_database", loaded.DatabaseKeys, "keys_in_memory", loaded.IndexKeys,
		"accounts", loaded.Accounts, "index_from", indexSource(loaded), "index_load", loaded.Took.Round(time.Millisecond),
		"took", time.Since(started).Round(time.Millisecond))
	if loaded.SnapshotRejected != "" {
		log.Warn("index snapshot not used; the database was loaded instead", "path", cfg.indexSnapshotPath(), "reason", loaded.SnapshotRejected)
	}
	if loaded.SnapshotError != "" {
		log.Warn("index snapshot not written; the next start loads the database", "path", cfg.indexSnapshotPath(), "error", loaded.SnapshotError)
	}

	sched, err := jobs.New(log, append(hooks.jobs,
		jobs.Job{Name: "flush-activity", Schedule: cfg.flushEvery, Run: jobs.FlushActivity(db), PerReplica: true},
		jobs.Job{Name: "expire-aliases", Schedule: cfg.expireEvery, Run: jobs.ExpireAliases(db, cfg.expiringLead, log)},
		jobs.Job{Name: "revoke-ended-grace", Schedule: cfg.expireEvery, Run: jobs.RevokeEndedGrace(db, log)},
		jobs.Job{Name: "release-idle-sites", Schedule: "@hourly", Run: jobs.ReleaseIdleSites(db, log)},
		jobs.Job{Name: "prune-idempotency-keys", Schedule: "@hourly", Run: jobs.PruneIdempotencyKeys(db)},
	)...)
	if err != nil {
		db.Close()
		return usageError{err.Error()}
	}
	sched.WithClaim(db.ClaimJobRun)
	if metrics != nil {
		metrics.WatchJobs(sched.Statuses)
		metrics.WatchOutbox(db.PendingMessages)
		metrics.WatchLogDrops(out.Dropped)
		metrics.WatchReplicas(db.Replicas)
	}
	requestLog := pluginapi.NewRequestLog(log, pluginapi.RequestLogConfig{Slow: cfg.slowRequest, Dropped: out.Dropped})
	handler, err := pluginapi.New(db, pluginapi.Config{AdminToken: token, Logger: log, Scopes: catalogue, Jobs: sched.Statuses, RequestLog: requestLog,
		AllowPrivateWebhooks: cfg.webhooks.allowPrivate, Metrics: metrics, TrustedProxies: splitList(cfg.trustedProxies),
		DisableCompatSPIO: !cfg.compatSPIO, TestKeys: cfg.testKeys, ReceiptLifetime: cfg.receiptLifetime})
	if err != nil {
		db.Close()
		return usagef("--trusted-proxies: %v", err)
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		db.Close()
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	srv := newHTTPServer(handler, cfg.limits, log)

	if cfg.pprofAddr != "" {
		stopProfiles, err := serveProfiles(cfg.pprofAddr, log)
		if err != nil {
			db.Close()
			ln.Close()
			return err
		}
		defer stopProfiles()
	}
	if metrics != nil {
		metricsLn, err := serveMetrics(cfg.metricsAddr, metrics, log)
		if err != nil {
			db.Close()
			ln.Close()
			return err
		}
		defer metricsLn.stop()
		fmt.Fprintf(e.stdout, "keyd metrics on http://%s/metrics\n", metricsLn.addr)
	}

	followCtx, stopFollowing := context.WithCancel(context.Background())
	defer stopFollowing()
	followEvery := time.Second
	if store.IsPostgresURL(cfg.db) {
		// The poll is only a fallback to announcements there, and each pass
		// is also the replica's heartbeat.
		followEvery = cfg.replicas.Timeout / 12
	}
	go db.FollowChanges(followCtx, followEvery)
	summaryCtx, stopSummaries := context.WithCancel(context.Background())
	summariesDone := make(chan struct{})
	go func() { requestLog.Run(summaryCtx, time.Minute); close(summariesDone) }()
	hooks.start()
	sched.Start()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("keyd listening", "addr", ln.Addr().String(), "version", version, "admin_api", token != "")
	warnInsecureSettings(log, cfg, token)
	fmt.Fprintf(e.stdout, "keyd listening on http://%s\n", ln.Addr())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", "error", err)
		}
	}

	// Orderly shutdown: stop taking requests and let in-flight ones finish,
	// then stop the jobs and webhook deliveries, then write what is pending,
	// then close the database.
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	stopSummaries() // the last summary: the requests since the last minute's
	<-summariesDone
	sched.Stop(10 * time.Second)
	hooks.shutdown()
	stopFollowing()
	if err := db.LeaveReplicas(context.Background()); err != nil {
		log.Warn("replica not removed from the replicas table; changes wait for it until --replica-timeout", "error", err)
	}
	flushErr := db.FlushActivity(context.Background())
	if flushErr != nil {
		log.Error("final flush failed", "error", flushErr)
	}
	// A snapshot at shutdown makes the next start catch up on nothing.
	if err := db.SaveIndexSnapshot(context.Background()); err != nil {
		log.Warn("index snapshot not written at shutdown", "path", cfg.indexSnapshotPath(), "error", err)
	}
	return errors.Join(shutdownErr, flushErr, db.Close())
}

// indexSnapshotPath is where the key index snapshot is kept, or "" for none.
func (cfg serveConfig) indexSnapshotPath() string {
	switch cfg.indexSnapshot {
	case "off":
		return ""
	case "":
		if store.IsPostgresURL(cfg.db) {
			return ""
		}
		return cfg.db + ".index"
	}
	return cfg.indexSnapshot
}

func indexSource(l store.LoadStats) string {
	if l.FromSnapshot {
		return fmt.Sprintf("snapshot, %d later events applied", l.CaughtUpEvents)
	}
	return "database"
}

// defaultLimits are the server limits unless flags say otherwise: a slow
// client (slowloris) is cut off after 5s without complete headers, a
// request has 30s to arrive whole and its answer 30s to be written, an idle
// keep-alive connection is closed after 2 minutes, and headers over 16 KiB
// are refused.
func defaultLimits() serverLimits {
	return serverLimits{readHeaderTimeout: 5 * time.Second, readTimeout: 30 * time.Second,
		writeTimeout: 30 * time.Second, idleTimeout: 120 * time.Second, maxHeaderBytes: 16 << 10}
}

// newHTTPServer is the API's server with its limits.
func newHTTPServer(h http.Handler, l serverLimits, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.readHeaderTimeout,
		ReadTimeout:       l.readTimeout,
		WriteTimeout:      l.writeTimeout,
		IdleTimeout:       l.idleTimeout,
		MaxHeaderBytes:    l.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(list string) []string {
	var out []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseScopes builds the scope catalogue from a comma-separated list.
func parseScopes(list string) (store.Catalogue, error) {
	c, err := store.NewCatalogue(strings.Split(list, ","))
	if err != nil {
		return c, usagef("--scopes: %v", err)
	}
	return c, nil
}

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "migrate", "migrate [--db FILE]")
	path := dbFlag(e, fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	db, err := store.Open(ctx, *path, store.WithoutIndex())
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "database %s is at schema version %d\n", store.RedactedDSN(*path), v)
	return nil
}

// warnInsecureSettings logs a warning for each setting that weakens
// security, so an operator who turned one on for development (or kept a
// container's 0.0.0.0) sees it in the log of every start.
func warnInsecureSettings(log *slog.Logger, cfg serveConfig, token string) {
	if cfg.webhooks.allowPrivate {
		log.Warn("--webhook-allow-private is on: webhook receivers may be on loopback and private addresses, so account owners can make keyd send requests into this host's network; use it only for development and tests")
	}
	if cfg.testKeys {
		log.Warn("--test-keys is on: the published test keys validate on this server; use it only for development and staging")
	}
	if isLoopbackAddr(cfg.addr) {
		return
	}
	log.Warn("the API listens on a non-loopback address: it is reachable from other machines; put TLS (a reverse proxy) in front of it", "addr", cfg.addr)
	if token != "" {
		log.Warn("the admin API is on and listens on a non-loopback address: anyone who can reach it may try the admin token; restrict who can reach /admin/v1", "addr", cfg.addr)
	}
}

// isLoopbackAddr reports whether host:port names a loopback host.
// checkAddr refuses a listen address that is not host:port (empty is off).
func checkAddr(flag, addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return usagef("%s must be host:port, such as 127.0.0.1:8080, not %q", flag, addr)
	}
	return nil
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveMetrics serves the Prometheus metrics at /metrics on their own
// listener, so they are reachable only where the operator chose: they
// reveal traffic (routes, outcomes, volumes), though no key or account.
func serveMetrics(addr string, m *pluginapi.Metrics, log *slog.Logger) (metricsListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return metricsListener{}, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	if !isLoopbackAddr(addr) {
		log.Warn("metrics are served on a non-loopback address: make sure only your Prometheus can reach it", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return metricsListener{addr: ln.Addr().String(), srv: srv}, nil
}

// metricsListener is the running metrics server; addr is where it listens.
type metricsListener struct {
	addr string
	srv  *http.Server
}

func (s metricsListener) stop() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// serveProfiles serves net/http/pprof on its own listener, apart from the
// API, so profiles are never reachable through keyd's public address.
func serveProfiles(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	log.Info("serving profiles", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { srv.Close() }, nil
}
