// Command keyd validates API keys for CMS plugins and manages accounts, keys
// and aliases. `keyd serve` runs the daemon; the other commands are for
// operators and open the database directly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "keyd:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "keyd:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// env is how commands read the environment; tests pass their own.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":       {"run the keyd daemon", runServe},
		"migrate":     {"apply database migrations and exit", runMigrate},
		"backup":      {"copy the database while keyd runs, and its secret key (backup --to FILE)", runBackup},
		"store":       {"copy every row of a database into a new one, SQLite into PostgreSQL (store copy --from FILE --to URL)", runStore},
		"version":     {"print the version", runVersion},
		"accounts":    {"manage accounts (accounts create|list|suspend|unsuspend|reset-key|sign-in-link)", runAccounts},
		"keys":        {"list an account's keys or end a reset key's grace (keys list|revoke)", runKeys},
		"aliases":     {"manage an account's aliases (aliases list|create|deactivate|reactivate|delete)", runAliases},
		"credits":     {"add to or show an account's credits (credits add|show)", runCredits},
		"plans":       {"list plans or set a plan's limits (plans list|set)", runPlans},
		"subaccounts": {"list an account's subaccounts (subaccounts list --account ID)", runSubaccounts},
		"receipts":    {"print the public keys of signed receipts, or rotate the signing key (receipts public-key|rotate)", runReceipts},
		"webhooks":    {"receive and verify webhooks, to try them out (webhooks listen --secret whsec_...)", runWebhooks},
		"seed":        {"create synthetic keys for load tests (seed --keys N --sample FILE)", runSeed},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout, cmds)
		if len(args) == 0 {
			return usagef("no command given")
		}
		return nil
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		printUsage(stderr, cmds)
		return usagef("unknown command %q", args[0])
	}
	return cmd.run(ctx, e, args[1:])
}

func printUsage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Usage: keyd <command> [flags]\n\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'keyd <command> --help' for a command's flags.")
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(e env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: keyd %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and refuses stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// envOr is the environment variable's value, or def.
func envOr(e env, name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

// envDuration reads a duration from the environment variable name, or def
// when it is unset.
func envDuration(e env, name string, def time.Duration) (time.Duration, error) {
	v := e.getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("%s must be a duration such as 3s, not %q", name, v)
	}
	return d, nil
}

// dbFlag adds the --db flag every command shares.
func dbFlag(e env, fs *flag.FlagSet) *string {
	return fs.String("db", envOr(e, "KEYD_DB", "./keyd.db"), "SQLite database file, or a postgres:// URL for PostgreSQL (env KEYD_DB)")
}

// subcommand splits "accounts create ..." into its verb and the rest.
func subcommand(e env, args []string, group string, verbs ...string) (string, []string, error) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintf(e.stdout, "Usage: keyd %s %s [flags]\nRun 'keyd %s <command> --help' for its flags.\n", group, strings.Join(verbs, "|"), group)
		return "", nil, flag.ErrHelp
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, usagef("keyd %s needs one of: %s", group, strings.Join(verbs, ", "))
	}
	for _, v := range verbs {
		if args[0] == v {
			return v, args[1:], nil
		}
	}
	return "", nil, usagef("keyd %s: unknown command %q (want one of: %s)", group, args[0], strings.Join(verbs, ", "))
}

func runVersion(_ context.Context, e env, args []string) error {
	fs := newFlags(e, "version", "version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "keyd", version)
	return nil
}
