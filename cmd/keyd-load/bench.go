package main

// The benchmark behind `make bench` and `make bench-large`.
//
// What it does, in order:
//
//  1. Seeds two throw-away databases with `keyd seed`: the large one (--keys,
//     1,000,000 by default) and a small one (--small, 10,000), each with a
//     sample file of plaintext keys.
//  2. Measures start-up: starts keyd on the large database on all CPUs, as an
//     operator would, and times it from exec to the first 200 VALID answer
//     for a known key: once without an index snapshot (the first start,
//     which loads the database and writes one), and once more from the
//     snapshot, as every later start. Reads VmRSS from /proc/PID/status once
//     the second is ready.
//  3. Starts the servers for the load runs: keyd on each database with its
//     default settings (as a user starts it, logging at info), a pair of
//     keyds on the large database for logging's cost, one with the defaults
//     and one with --log-level warn, and the floor, a
//     bare gin program of validate's route shape (floor.go). It runs the
//     cases interleaved, round after round, so that a slow moment of the
//     machine hits every case alike: GET /healthz, validate with known keys,
//     validate with 50% unknown keys, validate on the small database, and
//     the floor's routes. Before each case every server is let finish
//     what it does in the background (see settle); while one server is
//     measured the others are paused (SIGSTOP), so that their background
//     jobs do not take the shared CPU.
//  4. Prints a table (median over rounds) and each target with PASS/FAIL,
//     and writes the same as JSON into --out. Besides requests/s and
//     latency, each case reports the server's CPU time per request (user
//     and system time from /proc/PID/stat over the measured time, divided
//     by the requests answered in it), which stays steadier than requests/s
//     when other work on the machine takes CPU time from the server.
//
// CPU pinning: on 2 cores keyd and the load generator would otherwise fight
// over the same CPUs and the ratios would swing from run to run. With --pin
// (the default when taskset and 2 CPUs are there) keyd and the floor run on
// CPU 1 only (Go then sets GOMAXPROCS to 1) and every load process on CPU 0, so each
// case measures what one core of keyd serves. The load generator writes
// requests by hand over raw keep-alive connections and costs far less per
// request than keyd does, so it is not the bottleneck on its core. Start-up
// is measured unpinned. Other work on the machine still shows up in the
// numbers; the load average before and after is recorded with them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type benchConfig struct {
	keyd, self, out, dbDir string
	keys, small, sample    int
	conns                  int
	duration, warmup       time.Duration
	rounds                 int
	pin                    bool
	profile                bool
	name                   string
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg benchConfig
	fs.StringVar(&cfg.keyd, "keyd", "build/keyd", "the keyd binary to measure")
	fs.StringVar(&cfg.out, "out", "build/bench", "directory for the JSON results, logs and profiles")
	fs.StringVar(&cfg.dbDir, "db-dir", "", "keep seeded databases here and reuse them on the next run (default: a temporary directory, removed afterwards)")
	fs.IntVar(&cfg.keys, "keys", 1_000_000, "keys in the large database")
	fs.IntVar(&cfg.small, "small", 10_000, "keys in the small database")
	fs.IntVar(&cfg.sample, "sample", 100_000, "known keys the load generator draws from")
	fs.IntVar(&cfg.conns, "c", 32, "connections per load run")
	fs.DurationVar(&cfg.duration, "d", 5*time.Second, "measured time per run")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured load at the start of each run")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds of interleaved runs")
	fs.BoolVar(&cfg.pin, "pin", canPin(), "pin keyd to CPU 1 and the load generator to CPU 0 with taskset")
	fs.BoolVar(&cfg.profile, "profile", false, "also save a CPU profile of keyd during the first validate run (keyd --pprof)")
	fs.StringVar(&cfg.name, "name", "bench", "name of the result file in --out (NAME.json)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.self = self
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	b := &bench{cfg: cfg, log: stderr}
	report, err := b.run(ctx)
	if err != nil {
		return err
	}
	return writeReport(stdout, report, filepath.Join(cfg.out, cfg.name+".json"))
}

// writeReport prints a report's table and writes it as JSON to path.
func writeReport(stdout io.Writer, rep interface{ print(io.Writer) }, path string) error {
	rep.print(stdout)
	body, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(path, append(body, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nresults written to %s\n", path)
	return nil
}

func canPin() bool {
	_, err := exec.LookPath("taskset")
	return err == nil && runtime.NumCPU() >= 2
}

type bench struct {
	cfg benchConfig
	log io.Writer
}

// Report is the whole outcome, as printed and as written to JSON.
type Report struct {
	Started        time.Time        `json:"started"`
	Host           string           `json:"host"`
	CPUs           int              `json:"cpus"`
	LoadBefore     string           `json:"loadavg_before"`
	LoadAfter      string           `json:"loadavg_after"`
	Pinned         bool             `json:"pinned"`
	Keys           int              `json:"keys"`
	SmallKeys      int              `json:"small_keys"`
	Connections    int              `json:"connections"`
	Duration       string           `json:"duration_per_run"`
	Rounds         int              `json:"rounds"`
	Seed           map[string]Seed  `json:"seed"`
	StartupSec     float64          `json:"startup_seconds"`           // from the index snapshot, as every start but the first
	StartupFullSec float64          `json:"startup_full_load_seconds"` // the first start, loading the database
	RSSReadyMB     float64          `json:"rss_ready_mb"`
	RSSLoadedMB    float64          `json:"rss_after_load_mb"`
	HWMMB          float64          `json:"rss_peak_mb"`
	Cases          []Case           `json:"cases"`
	Targets        []Target         `json:"targets"`
	Runs           []Result         `json:"runs"`
	Checks         []string         `json:"check_failures"`
	Profiles       []string         `json:"profiles,omitempty"`
	Extra          map[string]any   `json:"extra,omitempty"`
	byName         map[string]*Case `json:"-"`
}

// Seed is how long seeding a database took.
type Seed struct {
	Keys    int     `json:"keys"`
	Seconds float64 `json:"seconds"`
	Reused  bool    `json:"reused"`
}

// Case is one load case, as the median over its rounds.
type Case struct {
	Name   string  `json:"name"`
	RPS    float64 `json:"rps"`
	CPUus  float64 `json:"cpu_us_per_req"` // of the server process
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	Non2xx int     `json:"non_2xx"`
	Errors int     `json:"errors"`
	Note   string  `json:"note,omitempty"`
}

// Target is one line of the performance issue with its outcome.
type Target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Limit  string  `json:"limit"`
	Result string  `json:"result"` // PASS, FAIL, INFO or SLOT
	Unit   string  `json:"unit,omitempty"`
}

// Case names.
const (
	caseFloorHealthz = "floor: healthz (bare gin)"
	caseFloor        = "floor: POST /v1/validate (bare gin)"
	caseHealthz      = "healthz"
	caseKnown        = "validate known keys"
	caseMixed        = "validate 50% unknown"
	caseKnownAB      = "validate known, defaults, A/B keyd"
	caseKnownWarn    = "validate known, --log-level warn, A/B keyd"
	caseSmall        = "validate known, small db"
	caseFloor64      = "floor: POST /v1/validate, 64 connections"
	caseKnown64      = "validate known, 64 connections"
	caseHealthz64    = "healthz, 64 connections"
	caseUsage        = "usage (POST /v1/usage), 64 connections"
	caseSPIO         = "api-status.php (ShortPixel-style)"
	caseReceipt      = "validate known, receipt=true, 10k keys"
)

// usageConns is the concurrency the issue sets for the usage target.
const usageConns = 64

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) (*Report, error) {
	cfg := b.cfg
	rep := &Report{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), LoadBefore: loadavg(), Pinned: cfg.pin,
		Keys: cfg.keys, SmallKeys: cfg.small, Connections: cfg.conns, Duration: cfg.duration.String(),
		Rounds: cfg.rounds, Seed: map[string]Seed{}, Extra: map[string]any{}}
	rep.Host, _ = os.Hostname()

	dir := cfg.dbDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "keyd-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}

	// 1. Seed.
	bigDB, bigSample, err := b.seed(ctx, rep, dir, cfg.keys)
	if err != nil {
		return nil, err
	}
	smallDB, smallSample, err := b.seed(ctx, rep, dir, cfg.small)
	if err != nil {
		return nil, err
	}
	// Receipts are asked for again and again by the same sites, and keyd
	// reuses each for half its life: the receipt case draws from 10,000 of
	// the sample's keys, which keyd's receipt cache holds whole.
	receiptSample, err := headLines(bigSample, filepath.Join(cfg.out, "receipt-keys.sample"), 10_000)
	if err != nil {
		return nil, err
	}
	probeKey, err := firstLine(bigSample)
	if err != nil {
		return nil, err
	}

	// 2. Start-up, on all CPUs: the first start loads the database (and
	// writes the index snapshot), every later one reads the snapshot.
	b.logf("measuring start-up with %d keys", cfg.keys)
	if err := os.Remove(bigDB + ".index"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err := b.startKeyd(ctx, bigDB, probeKey, false, "startup-full", false)
	if err != nil {
		return nil, err
	}
	rep.StartupFullSec = k.startup.Seconds()
	k.stop()
	if k, err = b.startKeyd(ctx, bigDB, probeKey, false, "startup", false); err != nil {
		return nil, err
	}
	rep.StartupSec = k.startup.Seconds()
	rep.RSSReadyMB, _ = procStatusMB(k.cmd.Process.Pid, "VmRSS")
	k.stop()

	// 3. Load runs. keyd with its defaults, keyd logging at warn only, and
	// the floor answering validate's route with an answer of the same size.
	big, err := b.startKeyd(ctx, bigDB, probeKey, cfg.pin, "large", cfg.profile)
	if err != nil {
		return nil, err
	}
	defer big.stop()
	// Logging's cost is measured on a pair of keyds used for nothing else,
	// one with the defaults, one with --log-level warn, so that both are
	// measured alike: the main keyd serves most cases, and its minute's
	// activity flush falls into its measurements more often.
	ab, err := b.startKeyd(ctx, bigDB, probeKey, cfg.pin, "large-ab", false)
	if err != nil {
		return nil, err
	}
	defer ab.stop()
	warn, err := b.startKeyd(ctx, bigDB, probeKey, cfg.pin, "large-warn", false, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer warn.stop()
	floor, err := b.startFloor(ctx, cfg.pin, big.answerBytes)
	if err != nil {
		return nil, err
	}
	defer floor.stop()
	rep.Extra["validate_answer_bytes"] = big.answerBytes
	smallProbe, err := firstLine(smallSample)
	if err != nil {
		return nil, err
	}
	small, err := b.startKeyd(ctx, smallDB, smallProbe, cfg.pin, "small", false)
	if err != nil {
		return nil, err
	}
	defer small.stop()
	servers := []*keydProc{big, ab, warn, floor, small}
	rep.Extra["startup_pinned_seconds"] = big.startup.Seconds()

	type loadCase struct {
		name    string
		target  *keydProc
		path    string
		body    string
		sample  string
		unknown float64
		conns   int // 0: --c
	}
	cases := []loadCase{
		{caseFloorHealthz, floor, "/healthz", "none", "", 0, 0},
		{caseFloor, floor, "/v1/validate", "form", bigSample, 0, 0},
		{caseHealthz, big, "/healthz", "none", "", 0, 0},
		{caseKnown, big, "/v1/validate", "form", bigSample, 0, 0},
		{caseMixed, big, "/v1/validate", "form", bigSample, 0.5, 0},
		{caseKnownAB, ab, "/v1/validate", "form", bigSample, 0, 0},
		{caseKnownWarn, warn, "/v1/validate", "form", bigSample, 0, 0},
		{caseSmall, small, "/v1/validate", "form", smallSample, 0, 0},
		{caseFloor64, floor, "/v1/validate", "form", bigSample, 0, usageConns},
		{caseKnown64, big, "/v1/validate", "form", bigSample, 0, usageConns},
		{caseHealthz64, big, "/healthz", "none", "", 0, usageConns},
		{caseUsage, big, "/v1/usage", "usage", bigSample, 0, usageConns},
		{caseSPIO, big, "/v2/api-status.php", "spio", bigSample, 0, 0},
		{caseReceipt, big, "/v1/validate", "receipt", receiptSample, 0, 0},
	}
	// Warm every server (and the index's pages) once before measuring.
	for _, c := range []loadCase{cases[1], cases[3], cases[5], cases[6], cases[7]} {
		if _, err := b.load(ctx, c.target, "warm-up", c.path, c.body, c.sample, c.unknown, c.conns, cfg.warmup+time.Second, 0); err != nil {
			return nil, err
		}
	}
	perCase := map[string][]Result{}
	for round := 1; round <= cfg.rounds; round++ {
		for _, c := range cases {
			var profile string
			if cfg.profile && round == 1 && (c.name == caseKnown || c.name == caseHealthz) {
				profile = filepath.Join(cfg.out, cfg.name+"-"+strings.Fields(c.name)[0]+".pprof")
			}
			b.logf("round %d/%d: %s", round, cfg.rounds, c.name)
			stopProfile := func() error { return nil }
			if profile != "" {
				stopProfile = c.target.captureProfile(profile, cfg.warmup, cfg.duration)
			}
			settle(ctx, servers)
			var resume []func()
			for _, other := range servers {
				if other != c.target {
					resume = append(resume, other.pause())
				}
			}
			res, err := b.load(ctx, c.target, c.name, c.path, c.body, c.sample, c.unknown, c.conns, cfg.duration, cfg.warmup)
			for _, r := range resume {
				r()
			}
			if err != nil {
				return nil, err
			}
			if err := stopProfile(); err != nil {
				b.logf("profile: %v", err)
			} else if profile != "" {
				rep.Profiles = append(rep.Profiles, profile)
			}
			rep.Runs = append(rep.Runs, res)
			perCase[c.name] = append(perCase[c.name], res)
			rep.Checks = append(rep.Checks, checkStatuses(round, c.name, c.unknown, res)...)
		}
	}
	rep.RSSLoadedMB, _ = procStatusMB(big.cmd.Process.Pid, "VmRSS")
	rep.HWMMB, _ = procStatusMB(big.cmd.Process.Pid, "VmHWM")
	rep.LoadAfter = loadavg()

	rep.byName = map[string]*Case{}
	for _, c := range cases {
		rep.Cases = append(rep.Cases, summarize(c.name, perCase[c.name]))
	}
	for i := range rep.Cases {
		rep.byName[rep.Cases[i].Name] = &rep.Cases[i]
	}
	rep.Targets = targets(rep)
	return rep, nil
}

// checkStatuses lists what is wrong with a run's answers: known keys must
// all be valid, unknown ones NOT_FOUND (401), and no transport errors.
func checkStatuses(round int, name string, unknown float64, r Result) []string {
	var out []string
	if r.Errors > 0 {
		out = append(out, fmt.Sprintf("round %d, %s: %d transport errors", round, name, r.Errors))
	}
	for code, n := range r.Status {
		if code == "200" || (code == "401" && unknown > 0) {
			continue
		}
		out = append(out, fmt.Sprintf("round %d, %s: %d answers with status %s", round, name, n, code))
	}
	if r.Requests == 0 {
		out = append(out, fmt.Sprintf("round %d, %s: no requests completed", round, name))
	}
	return out
}

func summarize(name string, runs []Result) Case {
	c := Case{Name: name}
	var rps, cpu, p50, p99 []float64
	for _, r := range runs {
		rps = append(rps, r.RPS)
		cpu = append(cpu, r.CPUus)
		p50 = append(p50, r.P50ms)
		p99 = append(p99, r.P99ms)
		c.Errors += r.Errors
		for code, n := range r.Status {
			if !strings.HasPrefix(code, "2") {
				c.Non2xx += n
			}
		}
	}
	c.RPS, c.CPUus, c.P50ms, c.P99ms = median(rps), median(cpu), median(p50), median(p99)
	return c
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// targets are the lines of the performance issue. Those that are stated for
// a database size other than the one measured are shown as INFO, and so are
// the comparisons with keyd's own /healthz, kept for reference.
func targets(rep *Report) []Target {
	h, known, mixed, small := rep.byName[caseHealthz], rep.byName[caseKnown], rep.byName[caseMixed], rep.byName[caseSmall]
	floor, floor64, known64 := rep.byName[caseFloor], rep.byName[caseFloor64], rep.byName[caseKnown64]
	ab, warn := rep.byName[caseKnownAB], rep.byName[caseKnownWarn]
	h64, usage, spio := rep.byName[caseHealthz64], rep.byName[caseUsage], rep.byName[caseSPIO]
	receipt := rep.byName[caseReceipt]
	at1M := rep.Keys == 1_000_000
	at10M := rep.Keys == 10_000_000
	startupLimit, memoryLimit := 1.0, 300.0 // at 1M keys
	if at10M {
		startupLimit, memoryLimit = 3, 1000
	}
	atLeast := func(name string, v, limit float64, applies bool) Target {
		return grade(name, v, fmt.Sprintf(">= %.2f", limit), v >= limit, applies, "")
	}
	atMost := func(name string, v, limit float64, applies bool, unit string) Target {
		return grade(name, v, fmt.Sprintf("<= %g", limit), v <= limit, applies, unit)
	}
	size := humanCount(rep.Keys)
	return []Target{
		atLeast("validate known req/s / floor req/s @"+size, ratio(known.RPS, floor.RPS), 0.90, at1M),
		atMost("validate known CPU/req / floor CPU/req @"+size, ratio(known.CPUus, floor.CPUus), 1.15, at1M, ""),
		atLeast("validate 50% unknown req/s / floor req/s @"+size, ratio(mixed.RPS, floor.RPS), 0.90, at1M),
		atMost("validate 50% unknown CPU/req / floor CPU/req @"+size, ratio(mixed.CPUus, floor.CPUus), 1.15, at1M, ""),
		atMost("validate known p99 / floor p99, 64 connections", ratio(known64.P99ms, floor64.P99ms), 1.5, at1M, ""),
		atLeast("validate known req/s, defaults / --log-level warn", ratio(ab.RPS, warn.RPS), 0.95, true),
		// The same in CPU per request, steadier on a busy machine; no target of its own.
		atMost("validate known CPU/req, defaults / --log-level warn", ratio(ab.CPUus, warn.CPUus), 1.05, false, ""),
		atLeast("validate known req/s / healthz req/s @"+size, ratio(known.RPS, h.RPS), 0.90, false),
		atLeast(fmt.Sprintf("validate req/s @%s / @%s", size, humanCount(rep.SmallKeys)), ratio(known.RPS, small.RPS), 0.95,
			rep.Keys >= 10_000_000 && rep.SmallKeys <= 10_000),
		atMost("resident memory after load @"+size, rep.RSSLoadedMB, memoryLimit, at1M || at10M, "MB"),
		atMost("start-up to ready @"+size, rep.StartupSec, startupLimit, at1M || at10M, "s"),
		// The first start only, or after the snapshot was lost: no target.
		atMost("start-up to ready, loading the database @"+size, rep.StartupFullSec, startupLimit, false, "s"),
		// Durable charges wait for the sync of their commit, which bounds
		// them far below /healthz (README, Performance): the target is to
		// stay as fast as they were, 0.19 to 0.22 of /healthz.
		atLeast("usage req/s / healthz req/s, 64 connections", ratio(usage.RPS, h64.RPS), 0.19, true),
		// No target of its own: shown beside validate, which it should stay near.
		atLeast("api-status.php req/s / validate known req/s @"+size, ratio(spio.RPS, known.RPS), 0.90, false),
		atLeast("validate with receipt req/s / validate known req/s @"+size, ratio(receipt.RPS, known.RPS), 0.80, at1M),
	}
}

func grade(name string, v float64, limit string, ok, applies bool, unit string) Target {
	t := Target{Name: name, Value: v, Limit: limit, Unit: unit, Result: "FAIL"}
	switch {
	case !applies:
		t.Result = "INFO"
	case ok:
		t.Result = "PASS"
	}
	return t
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func (rep *Report) print(w io.Writer) {
	pin := "unpinned"
	if rep.Pinned {
		pin = "keyd and floor on CPU 1, load generator on CPU 0"
	}
	fmt.Fprintf(w, "keyd bench %s: %s keys (small db %s), %d connections, %s x %d rounds, %s\n",
		rep.Started.Format(time.RFC3339), humanCount(rep.Keys), humanCount(rep.SmallKeys), rep.Connections, rep.Duration, rep.Rounds, pin)
	fmt.Fprintf(w, "load average before: %s, after: %s\n", rep.LoadBefore, rep.LoadAfter)
	for _, name := range slices.Sorted(maps.Keys(rep.Seed)) {
		s := rep.Seed[name]
		if s.Reused {
			fmt.Fprintf(w, "seed %s keys: reused\n", humanCount(s.Keys))
		} else {
			fmt.Fprintf(w, "seed %s keys: %.1fs (%.0f keys/s)\n", humanCount(s.Keys), s.Seconds, float64(s.Keys)/s.Seconds)
		}
	}
	fmt.Fprintf(w, "start-up to first VALID: %.2fs from the index snapshot, %.2fs loading the database; RSS ready %.0f MB, after load %.0f MB, peak %.0f MB\n\n",
		rep.StartupSec, rep.StartupFullSec, rep.RSSReadyMB, rep.RSSLoadedMB, rep.HWMMB)

	printCases(w, rep.Cases)
	fmt.Fprintln(w)
	printTargets(w, rep.Targets, rep.Checks)
}

// printCases prints the table of load runs, bench's and bench-cluster's.
func printCases(w io.Writer, cases []Case) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\treq/s\tCPU µs/req\tp50 ms\tp99 ms\tnon-2xx\terrors\t")
	for _, c := range cases {
		if c.Note != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t  %s\n", c.Name, c.Note)
			continue
		}
		cpu := "-" // not measured (bench-cluster's load during the trials)
		if c.CPUus > 0 {
			cpu = fmt.Sprintf("%.1f", c.CPUus)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.3f\t%.3f\t%d\t%d\t\n", c.Name, c.RPS, cpu, c.P50ms, c.P99ms, c.Non2xx, c.Errors)
	}
	tw.Flush()
}

// printTargets prints the targets and their results, then any unexpected
// answers.
func printTargets(w io.Writer, targets []Target, checks []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tvalue\tlimit\tresult")
	for _, t := range targets {
		if t.Result == "SLOT" {
			fmt.Fprintf(tw, "%s\t-\t%s\t%s (endpoint not built yet)\n", t.Name, t.Limit, t.Result)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.2f%s\t%s%s\t%s\n", t.Name, t.Value, t.Unit, t.Limit, t.Unit, t.Result)
	}
	tw.Flush()
	if len(checks) > 0 {
		fmt.Fprintln(w, "\nunexpected answers:")
		for _, c := range checks {
			fmt.Fprintln(w, "  "+c)
		}
	}
}

// seed makes (or, with --db-dir, reuses) a database of n keys and its sample.
func (b *bench) seed(ctx context.Context, rep *Report, dir string, n int) (db, sample string, err error) {
	db = filepath.Join(dir, fmt.Sprintf("keys-%d.db", n))
	sample = filepath.Join(dir, fmt.Sprintf("keys-%d.sample", n))
	name := humanCount(n)
	if b.cfg.dbDir != "" {
		if _, err1 := os.Stat(db); err1 == nil {
			if _, err2 := os.Stat(sample); err2 == nil {
				b.logf("reusing %s", db)
				rep.Seed[name] = Seed{Keys: n, Reused: true}
				return db, sample, nil
			}
		}
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(db + suffix)
	}
	b.logf("seeding %d keys into %s", n, db)
	start := time.Now()
	cmd := exec.CommandContext(ctx, b.cfg.keyd, "seed", "--db", db, "--keys", strconv.Itoa(n),
		"--sample", sample, "--sample-size", strconv.Itoa(min(n, b.cfg.sample)))
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("keyd seed: %w", err)
	}
	rep.Seed[name] = Seed{Keys: n, Seconds: time.Since(start).Seconds()}
	return db, sample, nil
}

// keydProc is a running server: keyd, or the floor.
type keydProc struct {
	cmd         *exec.Cmd
	url         string
	pprof       string
	startup     time.Duration
	answerBytes int // of validate's answer to the probe key
	done        chan struct{}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startKeyd starts keyd on db with its default settings and extra, and
// waits until it answers VALID for probeKey, or with no probeKey (a database
// without keys yet) until it answers /healthz.
func (b *bench) startKeyd(ctx context.Context, db, probeKey string, pin bool, name string, withPprof bool, extra ...string) (*keydProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{b.cfg.keyd, "serve", "--db", db, "--addr", addr}, extra...)
	p := &keydProc{url: "http://" + addr, done: make(chan struct{})}
	if withPprof {
		if p.pprof, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof", p.pprof)
	}
	// Every KEYD_ setting of the caller's environment is left out: keyd
	// runs with its defaults and the flags above.
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYD_") {
			environ = append(environ, kv)
		}
	}
	start := time.Now()
	logFile, err := b.spawn(p, pin, "keyd-"+name, args, environ)
	if err != nil {
		return nil, err
	}

	client := &http.Client{Timeout: time.Second}
	body := url.Values{"key": {probeKey}}.Encode()
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("keyd exited during start-up (see %s)", logFile.Name())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		var resp *http.Response
		if probeKey == "" {
			resp, err = client.Get(p.url + "/healthz")
		} else {
			resp, err = client.Post(p.url+"/v1/validate", "application/x-www-form-urlencoded", strings.NewReader(body))
		}
		if err != nil {
			if time.Since(start) > 10*time.Minute {
				p.stop()
				return nil, errors.New("keyd did not start within 10 minutes")
			}
			continue
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.stop()
			return nil, fmt.Errorf("keyd answered %d for a seeded key, or to /healthz", resp.StatusCode)
		}
		p.answerBytes = len(answer)
		p.startup = time.Since(start)
		b.logf("keyd (%s) ready in %s", name, p.startup.Round(time.Millisecond))
		return p, nil
	}
}

// settle waits (15 s at most) until no server spends CPU time, all of them
// running. A paused keyd's scheduled jobs (the activity flush, a minute
// apart) come due while it is stopped and run as soon as it goes on; without
// this they would run inside its next measured window, and the keyd measured
// least often would carry the most of them. And a keyd paused while idle
// holds no write lock that the other keyd on the same database would wait for.
func settle(ctx context.Context, servers []*keydProc) {
	const window, idle = 250 * time.Millisecond, 0.01 // seconds of CPU: one tick of /proc
	deadline := time.Now().Add(15 * time.Second)
	cpu := func() []float64 {
		out := make([]float64, len(servers))
		for i, p := range servers {
			out[i], _ = processCPU(p.cmd.Process.Pid)
		}
		return out
	}
	before := cpu()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(window)
		after := cpu()
		busy := false
		for i := range after {
			busy = busy || after[i]-before[i] > idle
		}
		if !busy {
			return
		}
		before = after
	}
}

// spawn starts args (on CPU 1 when pinning) with its output in a log file of
// --out, and closes p.done when it exits.
func (b *bench) spawn(p *keydProc, pin bool, name string, args, environ []string) (*os.File, error) {
	if pin {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	logFile, err := os.Create(filepath.Join(b.cfg.out, b.cfg.name+"-"+name+".log"))
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.Env = environ
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() { p.cmd.Wait(); logFile.Close(); close(p.done) }()
	return logFile, nil
}

// startFloor starts the floor (keyd-load floor, floor.go) answering
// validate with answerBytes, and waits until it answers /healthz.
func (b *bench) startFloor(ctx context.Context, pin bool, answerBytes int) (*keydProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &keydProc{url: "http://" + addr, done: make(chan struct{})}
	args := []string{b.cfg.self, "floor", "--addr", addr, "--answer-bytes", strconv.Itoa(answerBytes)}
	logFile, err := b.spawn(p, pin, "floor", args, os.Environ())
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Second}
	for start := time.Now(); ; {
		select {
		case <-p.done:
			return nil, fmt.Errorf("the floor exited during start-up (see %s)", logFile.Name())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		resp, err := client.Get(p.url + "/healthz")
		if err != nil {
			if time.Since(start) > time.Minute {
				p.stop()
				return nil, errors.New("the floor did not start within a minute")
			}
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.stop()
			return nil, fmt.Errorf("the floor answered %d", resp.StatusCode)
		}
		return p, nil
	}
}

// pause freezes keyd (SIGSTOP) until the returned function lets it go on.
// Both keyds of a bench share one CPU, and the one not being measured must
// not spend it meanwhile on its background jobs, such as an activity flush:
// that work is only postponed, into its own runs.
func (p *keydProc) pause() (resume func()) {
	p.cmd.Process.Signal(syscall.SIGSTOP)
	return func() { p.cmd.Process.Signal(syscall.SIGCONT) }
}

// stop ends keyd with SIGTERM (an orderly shutdown), then SIGKILL.
func (p *keydProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// captureProfile fetches a CPU profile of keyd covering a load run's
// measured part; the returned function waits for it.
func (p *keydProc) captureProfile(path string, delay, d time.Duration) func() error {
	errc := make(chan error, 1)
	go func() {
		time.Sleep(delay)
		secs := max(1, int(d.Seconds()))
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprof, secs))
		if err != nil {
			errc <- err
			return
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, resp.Body); err != nil {
			errc <- err
			return
		}
		if resp.StatusCode != http.StatusOK {
			errc <- fmt.Errorf("pprof answered %d", resp.StatusCode)
			return
		}
		errc <- os.WriteFile(path, buf.Bytes(), 0o644)
	}()
	return func() error { return <-errc }
}

// load runs one load case in a separate keyd-load process (pinned to CPU 0
// when pinning) and returns what it measured.
func (b *bench) load(ctx context.Context, p *keydProc, name, path, body, sample string, unknown float64, conns int, d, warmup time.Duration) (Result, error) {
	args := b.loadArgs(p, name, path, body, sample, unknown, conns, d, warmup)
	args = append(args, "--pid", strconv.Itoa(p.cmd.Process.Pid))
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stderr = b.log
	out, err := cmd.Output()
	if err != nil {
		return Result{}, fmt.Errorf("load run %q: %w", name, err)
	}
	return parseResult(name, out)
}

// loadArgs is the command line of a keyd-load run process for one case.
func (b *bench) loadArgs(p *keydProc, name, path, body, sample string, unknown float64, conns int, d, warmup time.Duration) []string {
	if conns == 0 {
		conns = b.cfg.conns
	}
	args := []string{b.cfg.self, "run", "--json", "--name", name, "--target", p.url, "--path", path, "--body", body,
		"-c", strconv.Itoa(conns), "-d", d.String(), "--warmup", warmup.String(),
		"--unknown", strconv.FormatFloat(unknown, 'f', -1, 64)}
	if sample != "" {
		args = append(args, "--keys", sample)
	}
	if b.cfg.pin {
		args = append([]string{"taskset", "-c", "0"}, args...)
	}
	return args
}

func parseResult(name string, out []byte) (Result, error) {
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		return Result{}, fmt.Errorf("load run %q: %w", name, err)
	}
	return res, nil
}

func firstLine(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if strings.TrimSpace(line) == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return strings.TrimSpace(line), nil
}

// procStatusMB reads a memory line (VmRSS, VmHWM) of /proc/PID/status in MB.
func procStatusMB(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// headLines writes the first n lines of the file src to dst.
func headLines(src, dst string, n int) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	lines := strings.SplitAfterN(string(b), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return dst, os.WriteFile(dst, []byte(strings.Join(lines, "")), 0o600)
}
