// Command keyd-load is keyd's load generator and benchmark driver.
//
//	keyd-load run --target URL --path /v1/validate --keys FILE [--unknown 0.5] ...
//
// drives one keyd with a fixed number of keep-alive connections for a fixed
// time and reports requests/s, p50, p99, errors and answers by status.
//
//	keyd-load bench --keyd build/keyd [--keys 1000000] ...
//
// is what `make bench` runs: it seeds databases, starts keyd, runs the load
// cases interleaved, measures start-up and memory, and prints the results
// against the performance targets (see bench.go).
//
//	keyd-load cluster --keyd build/keyd [--trials 1000] ...
//
// is what `make bench-cluster` runs: PostgreSQL and three keyd replicas,
// validate and usage load on all of them, and revocation trials against
// one keyd on SQLite (see cluster.go).
//
//	keyd-load floor --addr 127.0.0.1:0 --answer-bytes N
//
// is the bare gin server bench measures keyd against (see floor.go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "keyd-load:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: keyd-load run|bench|cluster|floor [flags]  (keyd-load run --help, keyd-load bench --help, keyd-load cluster --help)")
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "cluster":
		return clusterCmd(ctx, args[1:], stdout, stderr)
	case "floor":
		return floorCmd(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (want run, bench, cluster or floor)", args[0])
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadConfig
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:8080", "keyd's base URL (loopback)")
	fs.StringVar(&cfg.Path, "path", "/v1/validate", "path to request")
	fs.StringVar(&cfg.Body, "body", "form", "request body: form (what WordPress sends), json, usage (POST /v1/usage: the key in X-API-Key, {\"units\":1}), or none for GET")
	keysFile := fs.String("keys", "", "file of known keys, one a line (keyd seed --sample)")
	fs.Float64Var(&cfg.Unknown, "unknown", 0, "share of requests (0 to 1) that carry a random unknown key")
	fs.IntVar(&cfg.Connections, "c", 32, "keep-alive connections (fixed concurrency)")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "measured duration")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before measuring, not counted")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests a second in all, each connection sending its share at even intervals; 0: each connection sends as soon as it is answered")
	fs.IntVar(&cfg.ServerPID, "pid", 0, "the server's process id: report its CPU time per request over the measured time (from /proc)")
	name := fs.String("name", "", "name of this run in the output")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch cfg.Body {
	case "none":
		cfg.Body, cfg.Method = "", "GET"
	case "form", "json", "usage", "spio", "receipt":
		cfg.Method = "POST"
	default:
		return fmt.Errorf("--body must be form, json, usage, spio, receipt or none")
	}
	if cfg.Connections < 1 || cfg.Duration <= 0 || cfg.Unknown < 0 || cfg.Unknown > 1 || cfg.Rate < 0 {
		return fmt.Errorf("need -c >= 1, -d > 0, --rate >= 0 and 0 <= --unknown <= 1")
	}
	if *keysFile != "" {
		var err error
		if cfg.Keys, err = readKeys(*keysFile); err != nil {
			return err
		}
	}
	res, err := runLoad(ctx, cfg)
	if err != nil {
		return err
	}
	res.Name = *name
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "%s %s: %d requests in %.1fs, %.0f req/s, p50 %.3f ms, p99 %.3f ms, max %.3f ms, %d errors, status %v",
		cfg.Method, cfg.Path, res.Requests, res.Seconds, res.RPS, res.P50ms, res.P99ms, res.Maxms, res.Errors, res.Status)
	if cfg.ServerPID != 0 {
		fmt.Fprintf(stdout, ", server CPU %.1f µs a request", res.CPUus)
	}
	fmt.Fprintln(stdout)
	return nil
}
