package main

// The cluster benchmark behind `make bench-cluster`.
//
// What it does, in order:
//
//  1. Starts a private PostgreSQL (store/postgres/pgtest, with durability
//     on, as a production server runs), creates a database and starts three
//     keyd replicas on it, each with the same secret key and admin token
//     and --log-level warn; creates an enterprise account (no rate limit)
//     with --aliases aliases whose keys the validate load sends, and a
//     second one with credits for the usage load.
//  2. Validate load over loopback on all replicas at once (-c connections in
//     all, spread over them) for -d: requests/s per replica and in total.
//  3. Revocation trials under a background validate load (--trial-c
//     connections in all, paced at --trial-rate validations a second in
//     all: a load the replicas carry with CPU to spare, as a cluster sized
//     for its traffic does; 0 saturates the CPUs): each trial creates an alias on a replica A
//     picked at random, checks that the other replicas accept it, then
//     deactivates it on A, timing that request (the owner's), and as soon
//     as A answers validates it on the others: a trial in which any of them
//     still accepts the key is a revocation that was not everywhere by the
//     time of the answer.
//  4. POST /v1/usage load over all replicas at once (--usage-c in all).
//  5. Stops the cluster and runs the same trials (--single-trials) against
//     one keyd on a fresh SQLite database under the same background load,
//     all of it on that keyd: the owner's request on one machine.
//
// The targets (issue 19): no trial may leave the key accepted anywhere, and
// the owner's request may take at most 50 ms longer at p99 on the cluster
// than on one machine. Nothing is pinned: three replicas, PostgreSQL and the
// load share the machine's CPUs.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"keyd/store/postgres/pgtest"
)

type clusterConfig struct {
	keyd, out, name             string
	replicas                    int
	conns, usageConns           int
	trialConns                  int
	trialRate                   float64
	durable                     bool
	duration, warmup            time.Duration
	trials, singleTrials        int
	aliases                     int
	replicaTimeout, replicaWait time.Duration
}

// revocationLimitMs is the target: the owner's request may take at most this
// much longer at p99 on the cluster than on one machine.
const revocationLimitMs = 50

func clusterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg clusterConfig
	fs.StringVar(&cfg.keyd, "keyd", "build/keyd", "the keyd binary to measure")
	fs.StringVar(&cfg.out, "out", "build/bench", "directory for the JSON results and logs")
	fs.StringVar(&cfg.name, "name", "bench-cluster", "name of the result file in --out (NAME.json)")
	fs.IntVar(&cfg.replicas, "replicas", 3, "keyd replicas on the one PostgreSQL")
	fs.IntVar(&cfg.conns, "c", 96, "validate load connections in all, spread over the replicas")
	fs.IntVar(&cfg.usageConns, "usage-c", usageConns, "POST /v1/usage load connections in all, spread over the replicas")
	fs.IntVar(&cfg.trialConns, "trial-c", 12, "validate load connections in all kept running during the revocation trials")
	fs.Float64Var(&cfg.trialRate, "trial-rate", 3000, "validations a second in all of the load during the trials, paced; 0: as fast as the connections are answered, which saturates the CPUs")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "measured time of the validate and the usage load")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured load at the start of each")
	fs.IntVar(&cfg.trials, "trials", 1000, "revocation trials on the cluster")
	fs.IntVar(&cfg.singleTrials, "single-trials", 1000, "revocation trials on one keyd on SQLite, for comparison")
	fs.IntVar(&cfg.aliases, "aliases", 50, "aliases whose keys the validate load sends")
	fs.BoolVar(&cfg.durable, "durable", true, "run PostgreSQL with fsync, synchronous_commit and full_page_writes on, as in production; false runs it as the tests do, without waiting for the disk")
	fs.DurationVar(&cfg.replicaTimeout, "replica-timeout", 0, "keyd serve --replica-timeout (default: keyd's)")
	fs.DurationVar(&cfg.replicaWait, "replica-wait", 0, "keyd serve --replica-wait (default: keyd's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.replicas < 2 || cfg.conns < cfg.replicas || cfg.usageConns < cfg.replicas || cfg.trialConns < cfg.replicas ||
		cfg.trials < 1 || cfg.singleTrials < 1 || cfg.aliases < 1 || cfg.duration <= 0 {
		return errors.New("need --replicas >= 2, at least one connection per replica for each load, --trials, --single-trials, --aliases >= 1 and -d > 0")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	c := &clusterBench{cfg: cfg, b: &bench{cfg: benchConfig{keyd: cfg.keyd, self: self, out: cfg.out, name: cfg.name}, log: stderr}}
	rep, err := c.run(ctx)
	if err != nil {
		return err
	}
	if err := writeReport(stdout, rep, filepath.Join(cfg.out, cfg.name+".json")); err != nil {
		return err
	}
	return rep.verdict()
}

// ClusterReport is the cluster benchmark's outcome, as printed and as
// written to JSON.
type ClusterReport struct {
	Started          time.Time `json:"started"`
	Host             string    `json:"host"`
	CPUs             int       `json:"cpus"`
	LoadBefore       string    `json:"loadavg_before"`
	LoadAfter        string    `json:"loadavg_after"`
	Replicas         int       `json:"replicas"`
	Connections      int       `json:"connections"`
	UsageConnections int       `json:"usage_connections"`
	TrialConnections int       `json:"trial_connections"`
	TrialRate        float64   `json:"trial_rate"` // 0: as fast as answered
	Durable          bool      `json:"postgres_durable"`
	Duration         string    `json:"duration_per_run"`
	// Cases: validate and usage per replica and in all, and the background
	// validate load during the trials.
	Cases      []Case     `json:"cases"`
	Revocation Revocation `json:"revocation"`        // on the cluster
	Single     Revocation `json:"revocation_single"` // on one keyd, SQLite
	Targets    []Target   `json:"targets"`
	Runs       []Result   `json:"runs"`
	Checks     []string   `json:"check_failures"`
}

// Revocation is what the revocation trials measured.
type Revocation struct {
	Where  string  `json:"where"`
	Trials int     `json:"trials"`
	P50ms  float64 `json:"p50_ms"` // of the owner's deactivation request
	P99ms  float64 `json:"p99_ms"`
	Maxms  float64 `json:"max_ms"`
	// StillAccepted counts the trials in which another replica accepted
	// the key after the deactivation was answered; Share is its share.
	StillAccepted int     `json:"still_accepted"`
	Share         float64 `json:"still_accepted_share"`
	// LeakedMs are the owner's request times of the trials counted in
	// StillAccepted: a request that ran out of --replica-wait is answered
	// before every replica has applied it.
	LeakedMs []float64 `json:"still_accepted_owner_ms"`
	// NotYetValid counts the trials in which another replica did not yet
	// accept the alias just created (no target: shown for what it is).
	NotYetValid int `json:"created_not_yet_valid_elsewhere"`
}

// trial is one revocation trial's outcome.
type trial struct {
	owner         time.Duration // the deactivation request on replica A
	stillAccepted bool          // by another replica after A answered
	notYetValid   bool          // the new alias, by another replica, before
}

// summarizeTrials reduces the trials to their percentiles and counts.
func summarizeTrials(where string, trials []trial) Revocation {
	r := Revocation{Where: where, Trials: len(trials)}
	var owner []time.Duration
	for _, t := range trials {
		owner = append(owner, t.owner)
		if t.stillAccepted {
			r.StillAccepted++
			r.LeakedMs = append(r.LeakedMs, ms(t.owner))
		}
		if t.notYetValid {
			r.NotYetValid++
		}
	}
	if len(owner) == 0 {
		return r
	}
	slices.Sort(owner)
	r.P50ms, r.P99ms, r.Maxms = ms(percentile(owner, 0.50)), ms(percentile(owner, 0.99)), ms(owner[len(owner)-1])
	r.Share = float64(r.StillAccepted) / float64(len(trials))
	return r
}

// clusterTargets grades the two lines: no trial leaves the key
// accepted anywhere, and the owner's request is at most 50 ms slower at p99
// than on one machine.
func clusterTargets(cluster, single Revocation) []Target {
	diff := cluster.P99ms - single.P99ms
	return []Target{
		grade("revocation: share of trials still accepted elsewhere after the answer", cluster.Share, "== 0",
			cluster.Trials > 0 && cluster.StillAccepted == 0, true, ""),
		grade("revocation: owner's request p99, cluster - one keyd on SQLite", diff, fmt.Sprintf("<= %d", revocationLimitMs),
			cluster.Trials > 0 && single.Trials > 0 && diff <= revocationLimitMs, true, "ms"),
	}
}

// verdict is an error when a target failed or an answer was not as expected.
func (rep *ClusterReport) verdict() error {
	var failed []string
	for _, t := range rep.Targets {
		if t.Result == "FAIL" {
			failed = append(failed, t.Name)
		}
	}
	if len(rep.Checks) > 0 {
		failed = append(failed, fmt.Sprintf("%d unexpected answers", len(rep.Checks)))
	}
	if len(failed) > 0 {
		return fmt.Errorf("bench-cluster failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// spread divides total connections over n servers, the first ones taking
// one more when it does not divide evenly.
func spread(total, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = total / n
		if i < total%n {
			out[i]++
		}
	}
	return out
}

// clusterTotal adds up runs made at the same time against different
// servers: requests/s and CPU time add up; latency percentiles cannot be
// merged, so the total shows the highest of the runs'.
func clusterTotal(name string, runs []Result) Case {
	c := Case{Name: name}
	var requests int
	var cpu float64
	for _, r := range runs {
		one := summarize(name, []Result{r})
		c.RPS += r.RPS
		c.P50ms, c.P99ms = max(c.P50ms, r.P50ms), max(c.P99ms, r.P99ms)
		c.Non2xx += one.Non2xx
		c.Errors += one.Errors
		requests += r.Requests
		cpu += r.CPUSeconds
	}
	if requests > 0 {
		c.CPUus = cpu * 1e6 / float64(requests)
	}
	return c
}

type clusterBench struct {
	cfg clusterConfig
	b   *bench
	// secret and admin are the flags every keyd of the run is given.
	secret, admin string
	client        *http.Client
}

func (c *clusterBench) keydFlags() []string {
	flags := []string{"--admin-token", c.admin, "--secret-key", c.secret, "--log-level", "warn"}
	if c.cfg.replicaTimeout > 0 {
		flags = append(flags, "--replica-timeout", c.cfg.replicaTimeout.String())
	}
	if c.cfg.replicaWait > 0 {
		flags = append(flags, "--replica-wait", c.cfg.replicaWait.String())
	}
	return flags
}

func (c *clusterBench) run(ctx context.Context) (*ClusterReport, error) {
	cfg := c.cfg
	rep := &ClusterReport{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), LoadBefore: loadavg(), Replicas: cfg.replicas,
		Connections: cfg.conns, UsageConnections: cfg.usageConns, TrialConnections: cfg.trialConns, TrialRate: cfg.trialRate, Durable: cfg.durable, Duration: cfg.duration.String()}
	rep.Host, _ = os.Hostname()
	secret := make([]byte, 32)
	rand.Read(secret)
	c.secret = base64.StdEncoding.EncodeToString(secret)
	token := make([]byte, 24)
	rand.Read(token)
	c.admin = hex.EncodeToString(token)
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer c.client.CloseIdleConnections()

	// 1. PostgreSQL, durable as in production, and the replicas on it.
	c.b.logf("starting PostgreSQL")
	var settings []string
	if cfg.durable {
		settings = []string{"fsync=on", "synchronous_commit=on", "full_page_writes=on"}
	}
	pg, err := pgtest.Start(settings...)
	if err != nil {
		return nil, err
	}
	defer pg.Stop()
	dsn, err := pg.CreateDatabase("keyd")
	if err != nil {
		return nil, err
	}
	var replicas []*keydProc
	stopAll := func() {
		for _, p := range replicas {
			p.stop()
		}
	}
	defer stopAll()
	for i := range cfg.replicas {
		p, err := c.b.startKeyd(ctx, dsn, "", false, fmt.Sprintf("replica-%d", i+1), false, c.keydFlags()...)
		if err != nil {
			return nil, err
		}
		replicas = append(replicas, p)
	}
	owner, keys, usageKey, err := c.setUp(ctx, replicas[0])
	if err != nil {
		return nil, err
	}
	sample := filepath.Join(cfg.out, cfg.name+"-keys.sample")
	if err := os.WriteFile(sample, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	usageSample := filepath.Join(cfg.out, cfg.name+"-usage.sample")
	if err := os.WriteFile(usageSample, []byte(usageKey+"\n"), 0o600); err != nil {
		return nil, err
	}

	// 2. Validate on every replica at once.
	settle(ctx, replicas)
	c.b.logf("validate load on %d replicas, %d connections in all, %s", cfg.replicas, cfg.conns, cfg.duration)
	runs, err := c.loadAll(ctx, replicas, "validate", "/v1/validate", "form", sample, cfg.conns)
	if err != nil {
		return nil, err
	}
	c.record(rep, "validate known", runs)

	// 3. Revocation trials under validate load.
	settle(ctx, replicas)
	c.b.logf("%d revocation trials on the cluster under validate load (%d connections)", cfg.trials, cfg.trialConns)
	trials, bg, err := c.trialsUnderLoad(ctx, replicas, sample, cfg.trials, owner)
	if err != nil {
		return nil, err
	}
	rep.Revocation = summarizeTrials(fmt.Sprintf("%d replicas on PostgreSQL", cfg.replicas), trials)
	c.record(rep, "validate during trials, cluster", bg)

	// 4. Usage on every replica at once.
	settle(ctx, replicas)
	c.b.logf("usage load on %d replicas, %d connections in all, %s", cfg.replicas, cfg.usageConns, cfg.duration)
	if runs, err = c.loadAll(ctx, replicas, "usage", "/v1/usage", "usage", usageSample, cfg.usageConns); err != nil {
		return nil, err
	}
	c.record(rep, "usage (POST /v1/usage)", runs)
	stopAll()
	replicas = nil
	if err := pg.Stop(); err != nil {
		c.b.logf("stopping PostgreSQL: %v", err)
	}

	// 5. The same trials on one machine: one keyd on SQLite.
	dir, err := os.MkdirTemp("", "keyd-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	single, err := c.b.startKeyd(ctx, filepath.Join(dir, "keyd.db"), "", false, "single", false, c.keydFlags()...)
	if err != nil {
		return nil, err
	}
	defer single.stop()
	singleOwner, singleKeys, _, err := c.setUp(ctx, single)
	if err != nil {
		return nil, err
	}
	singleSample := filepath.Join(cfg.out, cfg.name+"-single-keys.sample")
	if err := os.WriteFile(singleSample, []byte(strings.Join(singleKeys, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	settle(ctx, []*keydProc{single})
	c.b.logf("%d revocation trials on one keyd on SQLite under validate load (%d connections)", cfg.singleTrials, cfg.trialConns)
	trials, bg, err = c.trialsUnderLoad(ctx, []*keydProc{single}, singleSample, cfg.singleTrials, singleOwner)
	if err != nil {
		return nil, err
	}
	rep.Single = summarizeTrials("one keyd on SQLite", trials)
	c.record(rep, "validate during trials, one keyd", bg)

	rep.LoadAfter = loadavg()
	rep.Targets = clusterTargets(rep.Revocation, rep.Single)
	return rep, nil
}

// record adds runs made at the same time against the replicas: each as a
// case of its own when there are several, and their total.
func (c *clusterBench) record(rep *ClusterReport, name string, runs []Result) {
	rep.Runs = append(rep.Runs, runs...)
	if len(runs) > 1 {
		for i, r := range runs {
			rep.Cases = append(rep.Cases, summarize(fmt.Sprintf("%s, replica %d", name, i+1), []Result{r}))
		}
		name += ", total"
	}
	rep.Cases = append(rep.Cases, clusterTotal(name, runs))
	for _, r := range runs {
		rep.Checks = append(rep.Checks, checkStatuses(1, r.Name, 0, r)...)
	}
}

// setUp makes, through keyd p, an enterprise account (no rate limit) with
// room for every trial's alias and --aliases aliases for the validate load,
// and a second account with credits for the usage load. It returns the
// first account's primary key (the owner's, who makes the trials' aliases),
// the aliases' keys and the second account's key.
func (c *clusterBench) setUp(ctx context.Context, p *keydProc) (owner string, keys []string, usageKey string, err error) {
	if owner, err = c.account(ctx, p, "bench-validate", 0); err != nil {
		return "", nil, "", err
	}
	for i := range c.cfg.aliases {
		_, key, err := c.createAlias(ctx, p, owner, fmt.Sprintf("load %d", i))
		if err != nil {
			return "", nil, "", err
		}
		keys = append(keys, key)
	}
	if usageKey, err = c.account(ctx, p, "bench-usage", 1_000_000_000); err != nil {
		return "", nil, "", err
	}
	return owner, keys, usageKey, nil
}

// account creates an enterprise account and returns its primary key.
func (c *clusterBench) account(ctx context.Context, p *keydProc, name string, credits int) (string, error) {
	var created struct {
		Account struct{ ID string }
		Key     string
	}
	body := map[string]any{"name": name, "email": "owner@" + name + ".test", "plan": "enterprise", "credits": credits}
	if _, err := c.call(ctx, p, "POST", "/admin/v1/accounts", c.admin, body, &created, http.StatusCreated); err != nil {
		return "", err
	}
	limit := map[string]any{"alias_limit": c.cfg.aliases + max(c.cfg.trials, c.cfg.singleTrials) + 100}
	if _, err := c.call(ctx, p, "PATCH", "/admin/v1/accounts/"+created.Account.ID, c.admin, limit, nil, http.StatusOK); err != nil {
		return "", err
	}
	return created.Key, nil
}

func (c *clusterBench) createAlias(ctx context.Context, p *keydProc, owner, name string) (id, key string, err error) {
	var alias struct {
		Alias struct{ ID string }
		Key   string
	}
	if _, err := c.call(ctx, p, "POST", "/v1/aliases", owner, map[string]any{"name": name}, &alias, http.StatusCreated); err != nil {
		return "", "", err
	}
	return alias.Alias.ID, alias.Key, nil
}

// call sends a JSON request and decodes the answer into out; an answer
// other than want is an error. It returns how long the request took.
func (c *clusterBench) call(ctx context.Context, p *keydProc, method, path, auth string, body, out any, want int) (time.Duration, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+auth)
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return 0, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, answer)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return took, nil
}

// validates asks p to validate key as a WordPress site does: true for 200
// (valid), false for 401 (refused); anything else is an error.
func (c *clusterBench) validates(ctx context.Context, p *keydProc, key string) (bool, error) {
	body := "key=" + url.QueryEscape(key) + formTail
	req, err := http.NewRequestWithContext(ctx, "POST", p.url+"/v1/validate", strings.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.client.Do(req)
	if err != nil {
		return false, err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized:
		return false, nil
	}
	return false, fmt.Errorf("validate on %s: %d %s", p.url, resp.StatusCode, answer)
}

// loadAll runs the same load on every replica at once, conns in all.
func (c *clusterBench) loadAll(ctx context.Context, replicas []*keydProc, name, path, body, sample string, conns int) ([]Result, error) {
	per := spread(conns, len(replicas))
	runs := make([]Result, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, p := range replicas {
		wg.Go(func() {
			runs[i], errs[i] = c.b.load(ctx, p, fmt.Sprintf("%s, replica %d", name, i+1), path, body, sample, 0, per[i], c.cfg.duration, c.cfg.warmup)
		})
	}
	wg.Wait()
	return runs, errors.Join(errs...)
}

// trialsUnderLoad runs n revocation trials over servers while a validate
// load of --trial-c connections in all runs on them, and returns the trials
// and what the load measured meanwhile.
func (c *clusterBench) trialsUnderLoad(ctx context.Context, servers []*keydProc, sample string, n int, owner string) ([]trial, []Result, error) {
	per := spread(c.cfg.trialConns, len(servers))
	var loads []*exec.Cmd
	var outs []*strings.Builder
	for i, p := range servers {
		// Runs until interrupted, then prints what it measured.
		args := c.b.loadArgs(p, fmt.Sprintf("validate during trials, %d", i+1), "/v1/validate", "form", sample, 0, per[i], 24*time.Hour, c.cfg.warmup)
		if c.cfg.trialRate > 0 {
			args = append(args, "--rate", strconv.FormatFloat(c.cfg.trialRate*float64(per[i])/float64(c.cfg.trialConns), 'f', -1, 64))
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, c.b.log
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		loads, outs = append(loads, cmd), append(outs, out)
	}
	stopLoads := func() ([]Result, error) {
		var runs []Result
		var errs []error
		for i, cmd := range loads {
			cmd.Process.Signal(syscall.SIGINT)
			if err := cmd.Wait(); err != nil {
				errs = append(errs, fmt.Errorf("background load %d: %w", i+1, err))
				continue
			}
			r, err := parseResult("background load", []byte(outs[i].String()))
			runs, errs = append(runs, r), append(errs, err)
		}
		loads = nil
		return runs, errors.Join(errs...)
	}
	defer func() {
		if loads != nil {
			stopLoads()
		}
	}()
	// Let the load reach its pace first.
	select {
	case <-time.After(c.cfg.warmup + time.Second):
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}

	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 19))
	trials := make([]trial, 0, n)
	for i := range n {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		t, err := c.trial(ctx, servers, rng.IntN(len(servers)), owner, i)
		if err != nil {
			return nil, nil, fmt.Errorf("trial %d: %w", i+1, err)
		}
		trials = append(trials, t)
	}
	runs, err := stopLoads()
	return trials, runs, err
}

// trial creates an alias on servers[a], deactivates it there, timing that
// request, and as soon as it is answered validates the key on every other
// server at once.
func (c *clusterBench) trial(ctx context.Context, servers []*keydProc, a int, owner string, i int) (trial, error) {
	var t trial
	id, key, err := c.createAlias(ctx, servers[a], owner, fmt.Sprintf("trial %d", i+1))
	if err != nil {
		return t, err
	}
	others := slices.Delete(slices.Clone(servers), a, a+1)
	for _, p := range others {
		ok, err := c.validates(ctx, p, key)
		if err != nil {
			return t, err
		}
		t.notYetValid = t.notYetValid || !ok
	}
	if t.owner, err = c.call(ctx, servers[a], "POST", "/v1/aliases/"+id+"/deactivate", owner, nil, nil, http.StatusOK); err != nil {
		return t, err
	}
	accepted := make([]bool, len(others))
	errs := make([]error, len(others))
	var wg sync.WaitGroup
	for j, p := range others {
		wg.Go(func() { accepted[j], errs[j] = c.validates(ctx, p, key) })
	}
	wg.Wait()
	t.stillAccepted = slices.Contains(accepted, true)
	return t, errors.Join(errs...)
}

func (rep *ClusterReport) print(w io.Writer) {
	durable := "fsync on"
	if !rep.Durable {
		durable = "fsync off"
	}
	fmt.Fprintf(w, "keyd bench-cluster %s: PostgreSQL (%s) and %d keyd replicas over loopback, %d CPUs, unpinned\n",
		rep.Started.Format(time.RFC3339), durable, rep.Replicas, rep.CPUs)
	fmt.Fprintf(w, "load average before: %s, after: %s\n", rep.LoadBefore, rep.LoadAfter)
	pace := "as fast as answered"
	if rep.TrialRate > 0 {
		pace = fmt.Sprintf("%.0f/s in all", rep.TrialRate)
	}
	fmt.Fprintf(w, "validate %d connections in all, usage %d, validate during the trials %d (%s); %s a run\n\n",
		rep.Connections, rep.UsageConnections, rep.TrialConnections, pace, rep.Duration)

	printCases(w, rep.Cases)
	fmt.Fprintln(w, "(a total's p50 and p99 are the highest replica's)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "revocation, owner's request\ttrials\tp50 ms\tp99 ms\tmax ms\tstill accepted elsewhere\tnew alias not yet valid elsewhere\t")
	for _, r := range []Revocation{rep.Revocation, rep.Single} {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\t%d (%.1f%%)\t%d\t\n", r.Where, r.Trials, r.P50ms, r.P99ms, r.Maxms, r.StillAccepted, 100*r.Share, r.NotYetValid)
	}
	tw.Flush()
	fmt.Fprintln(w)
	printTargets(w, rep.Targets, rep.Checks)
}
