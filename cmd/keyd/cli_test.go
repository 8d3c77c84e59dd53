package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pluginapi "keyd/plugin-api"
	"keyd/store"
)

// cli runs keyd's command line in-process against one database file.
type cli struct {
	t    *testing.T
	path string
	env  map[string]string
}

// newCLI makes a new database with keyd migrate, as an operator would.
func newCLI(t *testing.T) *cli {
	c := &cli{t: t, path: filepath.Join(t.TempDir(), "keyd.db"), env: map[string]string{}}
	c.mustRun("migrate")
	return c
}

func (c *cli) getenv(name string) string {
	if name == "KEYD_DB" {
		return c.path // never ./keyd.db in the source tree
	}
	return c.env[name]
}

// run runs a command and returns what it printed.
func (c *cli) run(args ...string) (string, string, error) {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, c.getenv, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// mustRun runs a command that must succeed.
func (c *cli) mustRun(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("keyd %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

var (
	createdLine = regexp.MustCompile(`(?m)^account (acc_[0-9a-f]{16}) created \(plan (\S+), (\d+) credits\)$`)
	keyLine     = regexp.MustCompile(`(?m)^primary key \(shown only now, store it safely\): ([A-Za-z0-9]{20})$`)
	dateTime    = `\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}`
)

// createAccount runs accounts create and returns the id and key it printed.
func (c *cli) createAccount(args ...string) (string, string) {
	c.t.Helper()
	out := c.mustRun(append([]string{"accounts", "create"}, args...)...)
	m, k := createdLine.FindStringSubmatch(out), keyLine.FindStringSubmatch(out)
	if m == nil || k == nil {
		c.t.Fatalf("accounts create printed:\n%s", out)
	}
	return m[1], k[1]
}

// fields splits a table row on runs of spaces.
func fields(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

// tableRows returns a table's lines after its header, which must be header.
func tableRows(t *testing.T, out string, header ...string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if got := fields(lines[0]); strings.Join(got, "|") != strings.Join(header, "|") {
		t.Fatalf("table header = %q, want %q", got, header)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, fields(l))
	}
	return rows
}

func TestCLIAccounts(t *testing.T) {
	c := newCLI(t)
	before := time.Now().UTC().Add(-time.Minute)
	id, key := c.createAccount("--name", "Acme", "--email", "ops@acme.test", "--plan", "pro", "--credits", "50")
	out := c.mustRun("accounts", "create", "--name", "Second", "--email", "b@example.com")
	if m := createdLine.FindStringSubmatch(out); m == nil || m[2] != "free" || m[3] != "0" {
		t.Errorf("accounts create with defaults printed:\n%s", out)
	}
	if !store.WellFormedKey(key) {
		t.Errorf("printed key %q is not a key", key)
	}

	rows := tableRows(t, c.mustRun("accounts", "list"), "ID", "NAME", "EMAIL", "PLAN", "STATUS", "CREDITS", "PARENT", "CREATED")
	if len(rows) != 2 {
		t.Fatalf("accounts list shows %d rows, want 2", len(rows))
	}
	r := rows[0]
	if len(r) != 8 || r[0] != id || r[1] != "Acme" || r[2] != "ops@acme.test" || r[3] != "pro" || r[4] != "active" || r[5] != "50" || r[6] != "-" {
		t.Errorf("accounts list row = %q", r)
	}
	created, err := time.Parse(timeLayout, r[len(r)-1])
	if err != nil || created.Before(before) || created.After(time.Now().UTC().Add(time.Minute)) {
		t.Errorf("created %q is not a YYYY-MM-DD HH:MM:SS time of now (%v)", r[len(r)-1], err)
	}
	if rows[1][1] != "Second" {
		t.Errorf("accounts list is not in creation order: %q", rows)
	}
	// Paging.
	rows = tableRows(t, c.mustRun("accounts", "list", "--after", id), "ID", "NAME", "EMAIL", "PLAN", "STATUS", "CREDITS", "PARENT", "CREATED")
	if len(rows) != 1 || rows[0][1] != "Second" {
		t.Errorf("accounts list --after: %q", rows)
	}
	rows = tableRows(t, c.mustRun("accounts", "list", "--limit", "1"), "ID", "NAME", "EMAIL", "PLAN", "STATUS", "CREDITS", "PARENT", "CREATED")
	if len(rows) != 1 || rows[0][0] != id {
		t.Errorf("accounts list --limit 1: %q", rows)
	}

	// Refused input is reported, not a crash, and creates nothing.
	if _, _, err := c.run("accounts", "create", "--name", "x", "--email", "x@x.test", "--plan", "platinum"); err == nil || !strings.Contains(err.Error(), "platinum") {
		t.Errorf("unknown plan: %v", err)
	}
	if _, _, err := c.run("accounts", "create", "--name", "x", "--email", "x@x.test", "--credits", "-5"); err == nil {
		t.Error("negative credits accepted")
	}
	if rows := tableRows(t, c.mustRun("accounts", "list"), "ID", "NAME", "EMAIL", "PLAN", "STATUS", "CREDITS", "PARENT", "CREATED"); len(rows) != 2 {
		t.Errorf("refused creations added accounts: %d rows", len(rows))
	}
}

func TestCLIKeysList(t *testing.T) {
	c := newCLI(t)
	id, key := c.createAccount("--name", "Acme", "--email", "ops@acme.test")
	header := []string{"ID", "NAME", "TYPE", "HINT", "CREATED", "LAST USED", "EXPIRES", "STATUS"}
	out := c.mustRun("keys", "list", "--account", id)
	if strings.Contains(out, key) {
		t.Fatal("keys list shows the whole key")
	}
	rows := tableRows(t, out, header...)
	if len(rows) != 1 {
		t.Fatalf("keys list rows: %q", rows)
	}
	r := rows[0]
	if len(r) != 8 || !strings.HasPrefix(r[0], "key_") || r[1] != "Primary key" || r[2] != "primary" || r[3] != "..."+store.KeyHint(key) ||
		!regexp.MustCompile(`^`+dateTime+`$`).MatchString(r[4]) || r[5] != "Never" || r[6] != "-" || r[7] != "active" {
		t.Errorf("keys list row = %q", r)
	}

	// After a validation is flushed, LAST USED is a time.
	ctx := context.Background()
	db, err := store.Open(ctx, c.path)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := db.LookupKey(store.HashKey(key))
	if !ok {
		t.Fatal("the key printed by accounts create is not in the database")
	}
	used := time.Date(2025, 6, 1, 8, 30, 5, 0, time.UTC)
	db.RecordValidation(v, true, store.SiteReport{}, used)
	if err := db.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rows = tableRows(t, c.mustRun("keys", "list", "--account", id), header...)
	if rows[0][5] != "2025-06-01 08:30:05" {
		t.Errorf("LAST USED after a validation = %q, want 2025-06-01 08:30:05", rows[0][5])
	}
	if _, _, err := c.run("keys", "list", "--account", "acc_0000000000000000"); err == nil || !strings.Contains(err.Error(), "no such account") {
		t.Errorf("keys list of a missing account: %v", err)
	}
}

func TestCLICredits(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "ops@acme.test", "--credits", "50")
	if out := c.mustRun("credits", "add", "--account", id, "--amount", "25", "--reason", "purchase"); !strings.HasPrefix(out, "account "+id+" has 75 credits (0 spent") {
		t.Errorf("credits add printed %q", out)
	}
	if out := c.mustRun("credits", "show", "--account", id); !strings.HasPrefix(out, "account "+id+" has 75 credits (0 spent") {
		t.Errorf("credits show printed %q", out)
	}
	_, _, err := c.run("credits", "add", "--account", id, "--amount", "-76")
	if err == nil || errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "credits") {
		t.Errorf("taking the pool below zero: %v", err)
	}
	if out := c.mustRun("credits", "add", "--account", id, "--amount", "-75"); !strings.HasPrefix(out, "account "+id+" has 0 credits") {
		t.Errorf("credits add -75 printed %q", out)
	}
	for _, args := range [][]string{{"show"}, {"add", "--amount", "5"}} {
		_, _, err := c.run(append([]string{"credits", args[0], "--account", "acc_0000000000000000"}, args[1:]...)...)
		if err == nil || !strings.Contains(err.Error(), "no such account") {
			t.Errorf("credits %s of a missing account: %v", args[0], err)
		}
	}
}

func TestCLIPlans(t *testing.T) {
	c := newCLI(t)
	header := []string{"PLAN", "ALIAS LIMIT", "SUBACCOUNT LIMIT", "RATE LIMIT / MIN"}
	rows := tableRows(t, c.mustRun("plans", "list"), header...)
	want := []string{"free|0|0|60", "pro|5|5|600", "mega|25|25|3000", "enterprise|per-account|per-account|unlimited"}
	if len(rows) != len(want) {
		t.Fatalf("plans list: %q", rows)
	}
	for i, r := range rows {
		if strings.Join(r, "|") != want[i] {
			t.Errorf("plans list row %d = %q, want %s", i, r, want[i])
		}
	}
	// A new plan is created only when asked, and states every limit.
	if _, _, err := c.run("plans", "set", "gold", "--alias-limit", "3", "--subaccount-limit", "1", "--rate-limit", "unlimited"); err == nil ||
		!strings.Contains(err.Error(), `no plan "gold"`) {
		t.Errorf("plans set of an unknown plan without --create: %v", err)
	}
	if rows := tableRows(t, c.mustRun("plans", "list"), header...); len(rows) != 4 {
		t.Errorf("a mistyped plan name created a plan: %q", rows)
	}
	rows = tableRows(t, c.mustRun("plans", "set", "gold", "--create", "--alias-limit", "3", "--subaccount-limit", "1", "--rate-limit", "unlimited"), header...)
	if len(rows) != 5 || strings.Join(rows[4], "|") != "gold|3|1|unlimited" {
		t.Errorf("plans set gold: %q", rows)
	}
	// A limit left out keeps its value.
	c.mustRun("plans", "set", "pro", "--alias-limit", "per-account")
	rows = tableRows(t, c.mustRun("plans", "list"), header...)
	if strings.Join(rows[1], "|") != "pro|per-account|5|600" {
		t.Errorf("after plans set pro --alias-limit per-account: %q", rows[1])
	}
	c.mustRun("plans", "set", "pro", "--rate-limit", "100", "--subaccount-limit", "2")
	rows = tableRows(t, c.mustRun("plans", "list"), header...)
	if strings.Join(rows[1], "|") != "pro|per-account|2|100" {
		t.Errorf("after plans set pro --rate-limit 100 --subaccount-limit 2: %q", rows[1])
	}
	// An account can use the new plan.
	c.createAccount("--name", "Gold", "--email", "g@example.com", "--plan", "gold")

	if _, _, err := c.run("plans", "set", "gold", "--alias-limit", "-1", "--rate-limit", "5"); err == nil {
		t.Error("a negative alias limit was accepted")
	}
	if _, _, err := c.run("plans", "set", "gold", "--alias-limit", "1", "--rate-limit", "0"); err == nil {
		t.Error("a zero rate limit was accepted")
	}
	if _, _, err := c.run("plans", "set", "gold", "--subaccount-limit", "-1"); err == nil {
		t.Error("a negative subaccount limit was accepted")
	}
}

func TestCLIMigrateAndVersion(t *testing.T) {
	c := newCLI(t)
	latest := fmt.Sprint(store.LatestSchemaVersion())
	want := "database " + c.path + " is at schema version " + latest + "\n"
	for i := 0; i < 2; i++ {
		if out := c.mustRun("migrate"); out != want {
			t.Errorf("migrate run %d printed %q, want %q", i+1, out, want)
		}
	}
	other := filepath.Join(t.TempDir(), "other.db")
	if out := c.mustRun("migrate", "--db", other); out != "database "+other+" is at schema version "+latest+"\n" {
		t.Errorf("migrate --db printed %q", out)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("migrate --db did not create the file: %v", err)
	}
	if out := c.mustRun("version"); out != "keyd "+version+"\n" || version == "" {
		t.Errorf("version printed %q", out)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"--verbose"},
		{"version", "extra"},
		{"version", "--short"},
		{"migrate", "now"},
		{"accounts"},
		{"accounts", "delete"},
		{"accounts", "--name", "x"},
		{"accounts", "create"},
		{"accounts", "create", "--name", "x"},
		{"accounts", "create", "--email", "x@example.com"},
		{"accounts", "create", "--name", "x", "--email", "x@example.com", "--credits", "lots"},
		{"accounts", "list", "--limit", "many"},
		{"keys"},
		{"keys", "list"},
		{"keys", "show", "--account", "acc_0000000000000000"},
		{"credits"},
		{"credits", "show"},
		{"credits", "add", "--account", "acc_0000000000000000"},
		{"credits", "add", "--account", "acc_0000000000000000", "--amount", "0"},
		{"credits", "show", "--account", "acc_0000000000000000", "--amount", "5"},
		{"plans", "delete"},
		{"plans", "set"},
		{"plans", "set", "--alias-limit", "3"},
		{"plans", "set", "gold"},
		{"plans", "set", "gold", "--create", "--alias-limit", "3", "--rate-limit", "5"},
		{"plans", "set", "gold", "--alias-limit", "three", "--rate-limit", "5"},
		{"plans", "set", "gold", "--alias-limit", "3", "--rate-limit", "fast"},
		{"plans", "set", "gold", "--subaccount-limit", "many"},
		{"serve", "--bogus"},
		{"serve", "stray"},
		{"serve", "--admin-token", "too-short"},
		{"serve", "--log-level", "loud"},
		{"serve", "--log-format", "xml"},
		{"serve", "--flush-schedule", "every now and then", "--addr", "127.0.0.1:0"},
	} {
		_, _, err := c.run(args...)
		if !errors.As(err, new(usageError)) {
			t.Errorf("keyd %s: error %v, want a usage error (exit status 2)", strings.Join(args, " "), err)
		}
	}
	// A setting given by environment variable is checked as its flag is.
	c.env["KEYD_COMPAT_SPIO"] = "maybe"
	if _, _, err := c.run("serve", "--addr", "127.0.0.1:0"); !errors.As(err, new(usageError)) {
		t.Errorf("keyd serve with KEYD_COMPAT_SPIO=maybe: error %v, want a usage error", err)
	}
	delete(c.env, "KEYD_COMPAT_SPIO")
	// None of them touched the database file except those that got that far.
	if _, err := os.Stat(filepath.Join(".", "keyd.db")); err == nil {
		t.Error("a test created ./keyd.db in the source tree")
	}
}

func TestCLIHelp(t *testing.T) {
	c := newCLI(t)
	for _, h := range []string{"--help", "-h", "help"} {
		out, _, err := c.run(h)
		if err != nil || !strings.Contains(out, "Usage: keyd <command>") {
			t.Errorf("keyd %s: %v\n%s", h, err, out)
		}
		for _, cmd := range []string{"serve", "migrate", "version", "accounts", "keys", "credits", "plans"} {
			if !strings.Contains(out, "  "+cmd+" ") {
				t.Errorf("keyd %s does not list %s", h, cmd)
			}
		}
	}
	for _, args := range [][]string{
		{"serve", "--help"},
		{"migrate", "-h"},
		{"accounts", "create", "--help"},
		{"keys", "list", "--help"},
		{"credits", "add", "--help"},
		{"plans", "set", "gold", "--help"},
	} {
		_, errOut, err := c.run(args...)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "Usage: keyd "+args[0]) || !strings.Contains(errOut, "-db") {
			t.Errorf("keyd %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
	}
	_, errOut, _ := c.run("serve", "--help")
	for _, f := range []string{"-addr", "-admin-token", "KEYD_ADDR", "KEYD_ADMIN_TOKEN"} {
		if !strings.Contains(errOut, f) {
			t.Errorf("keyd serve --help does not mention %s", f)
		}
	}
}

// TestMainExitStatus runs the real main in a child process: usage errors
// exit with 2, other errors with 1, help and success with 0.
func TestMainExitStatus(t *testing.T) {
	if args, ok := os.LookupEnv("KEYD_TEST_MAIN_ARGS"); ok {
		os.Args = append([]string{"keyd"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	db := filepath.Join(t.TempDir(), "keyd.db")
	for _, tt := range []struct {
		args   string
		status int
	}{
		{"", 2},
		{"frobnicate", 2},
		{"accounts create --name x", 2},
		{"serve --admin-token short", 2},
		{"--help", 0},
		{"serve --help", 0},
		{"version", 0},
		{"migrate", 0},
		{"credits show --account acc_0000000000000000", 1},
		{"accounts create --name x --email not-an-email", 2},
		{"accounts list --db " + filepath.Join(t.TempDir(), "typo.db"), 2},
		{"plans set --help", 0},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitStatus$")
		cmd.Env = append(os.Environ(), "KEYD_TEST_MAIN_ARGS="+tt.args, "KEYD_DB="+db, "KEYD_ADMIN_TOKEN=")
		out, err := cmd.CombinedOutput()
		status := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			status = exitErr.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != tt.status {
			t.Errorf("keyd %s exited with %d, want %d\n%s", tt.args, status, tt.status, out)
		}
		if tt.status != 0 && !strings.Contains(string(out), "keyd: ") {
			t.Errorf("keyd %s failed without saying why:\n%s", tt.args, out)
		}
	}
}

// TestCLIBadInvocations: every mistake on the command line is a usage error
// (exit status 2) whose message says what is wrong, and none of them changes
// the database.
func TestCLIBadInvocations(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "ops@acme.test", "--plan", "pro", "--credits", "10")
	missing := filepath.Join(t.TempDir(), "typo.db")
	for _, tt := range []struct {
		args []string
		want string // in the message
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"accounts", "create", "--name", "x", "--email", "x@example.com", "--bogus"}, "-bogus"},
		{[]string{"accounts", "create", "--name", "x"}, "--email"},
		{[]string{"accounts", "create", "--name", "x", "--email", "not an email"}, "--email"},
		{[]string{"accounts", "create", "--name", "x", "--email", "x@localhost"}, "--email"},
		{[]string{"accounts", "create", "--name", "x", "--email", strings.Repeat("a", 250) + "@x.test"}, "254"},
		{[]string{"accounts", "create", "--name", "x", "--email", "x@example.com", "--credits", "-5"}, "--credits"},
		{[]string{"accounts", "create", "--name", "x", "--email", "x@example.com", "--credits", "1e3"}, "-credits"},
		{[]string{"accounts", "create", "--name", "x", "--email", "x@example.com", "--plan", "platinum"}, "platinum"},
		{[]string{"accounts", "create", "--name", "x", "--email", "x@example.com", "stray"}, `unexpected argument "stray"`},
		{[]string{"accounts", "list", "--limit", "0"}, "--limit"},
		{[]string{"accounts", "list", "--limit", "-1"}, "--limit"},
		{[]string{"accounts", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"keys", "list", "--account", id, "extra"}, `unexpected argument "extra"`},
		{[]string{"keys", "list"}, "--account"},
		{[]string{"aliases"}, "keyd aliases needs one of"},
		{[]string{"aliases", "list"}, "aliases list needs --account"},
		{[]string{"aliases", "create", "--account", id}, "--name"},
		{[]string{"aliases", "create", "--account", id, "--name", "bad/name"}, "--name"},
		{[]string{"aliases", "create", "--account", id, "--name", "a", "--ttl", "soon"}, "--ttl"},
		{[]string{"aliases", "create", "--account", id, "--name", "a", "--expires-at", "tomorrow"}, "--expires-at"},
		{[]string{"aliases", "create", "--account", id, "--name", "a", "--expires-at", "2001-01-01T00:00:00Z"}, "--expires-at"},
		{[]string{"aliases", "create", "--account", id, "--name", "a", "--ttl", "7d", "--expires-at", "2101-01-01T00:00:00Z"}, "not both"},
		{[]string{"aliases", "delete", "--account", id}, "--id"},
		{[]string{"credits", "add", "--account", id, "--amount", "ten"}, "-amount"},
		{[]string{"credits", "add", "--account", id, "--amount", "2000000000000"}, "--amount"},
		{[]string{"subaccounts", "list"}, "--account"},
		{[]string{"subaccounts", "create"}, `unknown command "create"`},
		{[]string{"plans", "set", "--alias-limit", "3", "--rate-limit", "5"}, "plan's name"},
		{[]string{"plans", "set", "Gold!", "--alias-limit", "3", "--rate-limit", "5"}, "--name"},
		{[]string{"plans", "set", "gold", "--alias-limit", "-1", "--rate-limit", "5"}, "--alias-limit"},
		{[]string{"plans", "set", "gold", "--alias-limit", "1", "--rate-limit", "0"}, "--rate-limit"},
		{[]string{"plans", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"backup"}, "--to"},
		{[]string{"backup", "--db", missing, "--to", filepath.Join(t.TempDir(), "b.db")}, missing},
		{[]string{"seed"}, "--keys"},
		{[]string{"seed", "--keys", "10", "--sample", "x", "--sample-size", "11"}, "--sample-size"},
		{[]string{"webhooks", "listen", "--secret", "whsec_" + strings.Repeat("A", 32), "--addr", "9000"}, "--addr"},
		{[]string{"serve", "--addr", "localhost"}, "--addr"},
		{[]string{"serve", "--metrics-addr", "9090"}, "--metrics-addr"},
		{[]string{"serve", "--pprof", "0.0.0.0:6060"}, "--pprof"},
		{[]string{"serve", "--read-timeout", "soon"}, "-read-timeout"},
		{[]string{"serve", "--read-timeout", "-1s"}, "--read-timeout"},
		{[]string{"serve", "--expiring-lead", "-1h"}, "--expiring-lead"},
		{[]string{"serve", "--shutdown-timeout", "0s"}, "--shutdown-timeout"},
		{[]string{"serve", "--webhook-workers", "0"}, "--webhook-workers"},
		{[]string{"serve", "--secret-key", "short"}, "--secret-key"},
		{[]string{"serve", "--scopes", "bad scope!"}, "--scopes"},
		{[]string{"serve", "--when-cut-off", "maybe"}, "--when-cut-off"},
		{[]string{"serve", "--replica-timeout", "0s"}, "--replica-timeout"},
		{[]string{"serve", "--replica-wait", "-1s"}, "--replica-wait"},
		{[]string{"serve", "--db", "postgres://keyd@127.0.0.1:1/keyd"}, "--secret-key"},
		{[]string{"serve", "--db", "postgres://keyd@127.0.0.1:1/keyd", "--secret-key", base64.StdEncoding.EncodeToString(make([]byte, 32)),
			"--index-snapshot", "/tmp/keyd.index"}, "--index-snapshot"},
	} {
		ctx := context.Background()
		if tt.args[0] == "serve" || tt.args[0] == "webhooks" {
			// Were the arguments accepted, it would stop at once instead
			// of serving for ever.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			cancel()
		}
		err := run(ctx, tt.args, c.getenv, io.Discard, io.Discard)
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("keyd %s: error %v, want a usage error (exit status 2) saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	rows := tableRows(t, c.mustRun("accounts", "list"), "ID", "NAME", "EMAIL", "PLAN", "STATUS", "CREDITS", "PARENT", "CREATED")
	if len(rows) != 1 {
		t.Errorf("refused commands changed the accounts: %q", rows)
	}
	if out := c.mustRun("keys", "list", "--account", id); strings.Count(out, "\n") != 2 {
		t.Errorf("refused commands created keys:\n%s", out)
	}
	if out := c.mustRun("plans", "list"); strings.Contains(out, "gold") {
		t.Errorf("refused plans set created a plan:\n%s", out)
	}
}

// TestCLIEmailRuleIsTheAPIs: the command line accepts exactly the emails the
// API accepts.
func TestCLIEmailRuleIsTheAPIs(t *testing.T) {
	c := newCLI(t)
	for i, email := range []string{"ops@acme.test", "o.p+s@sub.acme.example", "a@b", "a b@acme.test", "ops@acme.test\n", "<ops@acme.test>",
		"Ops <ops@acme.test>", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".test", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".test"} {
		_, _, err := c.run("accounts", "create", "--name", fmt.Sprint("a", i), "--email", email)
		if api := pluginapi.ValidEmail(email); (err == nil) != api {
			t.Errorf("email %q: the API accepts it: %v, the command line says %v", email, api, err)
		} else if err != nil && !errors.As(err, new(usageError)) {
			t.Errorf("email %q: %v, want a usage error", email, err)
		}
	}
}

// TestCLIMissingDatabase: only serve and migrate (and seed, which makes
// load-test databases) create a database; any other command given a path
// that names no file says so, exits 2 and creates nothing, so a mistyped
// --db cannot look like an empty keyd.
func TestCLIMissingDatabase(t *testing.T) {
	c := newCLI(t)
	missing := filepath.Join(t.TempDir(), "kyed.db")
	for _, args := range [][]string{
		{"accounts", "list"},
		{"accounts", "create", "--name", "x", "--email", "x@example.com"},
		{"keys", "list", "--account", "acc_0000000000000000"},
		{"aliases", "list", "--account", "acc_0000000000000000"},
		{"aliases", "create", "--account", "acc_0000000000000000", "--name", "x"},
		{"credits", "show", "--account", "acc_0000000000000000"},
		{"credits", "add", "--account", "acc_0000000000000000", "--amount", "5"},
		{"plans", "list"},
		{"plans", "set", "gold", "--alias-limit", "1", "--rate-limit", "5"},
		{"subaccounts", "list", "--account", "acc_0000000000000000"},
		{"backup", "--to", filepath.Join(t.TempDir(), "copy.db")},
	} {
		_, _, err := c.run(append(args, "--db", missing)...)
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "no database at "+missing) {
			t.Errorf("keyd %s --db <missing>: %v, want a usage error naming the path", strings.Join(args, " "), err)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("keyd %s --db <missing> created the file", strings.Join(args, " "))
		}
	}
	// The environment variable is checked the same way.
	c.path = missing
	if _, _, err := c.run("accounts", "list"); !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), missing) {
		t.Errorf("KEYD_DB=<missing> keyd accounts list: %v", err)
	}
	c.mustRun("migrate")
	if _, err := os.Stat(missing); err != nil {
		t.Errorf("migrate did not create the database: %v", err)
	}
	c.mustRun("accounts", "list")
}

func TestCLIAliasesList(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "ops@acme.test", "--plan", "pro")
	if out := c.mustRun("aliases", "create", "--account", id, "--name", "Client site", "--ttl", "7d"); !strings.Contains(out, `"Client site" created`) {
		t.Fatalf("aliases create printed:\n%s", out)
	}
	header := []string{"ID", "NAME", "TYPE", "HINT", "CREATED", "LAST USED", "EXPIRES", "STATUS"}
	rows := tableRows(t, c.mustRun("aliases", "list", "--account", id), header...)
	if len(rows) != 1 || rows[0][1] != "Client site" || rows[0][2] != "alias" {
		t.Errorf("aliases list shows %q, want the one alias and not the primary key", rows)
	}
	if rows := tableRows(t, c.mustRun("keys", "list", "--account", id), header...); len(rows) != 2 {
		t.Errorf("keys list shows %q, want the primary key and the alias", rows)
	}
	// No aliases: the header alone.
	other, _ := c.createAccount("--name", "Other", "--email", "o@other.test")
	if rows := tableRows(t, c.mustRun("aliases", "list", "--account", other), header...); len(rows) != 0 {
		t.Errorf("aliases list of an account without aliases: %q", rows)
	}
}

// TestCLISubcommandHelp: each command's help names the command itself and
// lists its flags.
func TestCLISubcommandHelp(t *testing.T) {
	c := newCLI(t)
	for _, tt := range []struct {
		args  []string
		usage string
		flags []string
	}{
		{[]string{"aliases", "list", "-h"}, "Usage: keyd aliases list ", []string{"-account", "-db"}},
		{[]string{"aliases", "create", "--help"}, "Usage: keyd aliases create ", []string{"-name", "-ttl", "-expires-at"}},
		{[]string{"keys", "list", "--help"}, "Usage: keyd keys list ", []string{"-account"}},
		{[]string{"subaccounts", "list", "--help"}, "Usage: keyd subaccounts list ", []string{"-account"}},
		{[]string{"plans", "set", "--help"}, "Usage: keyd plans ", []string{"-alias-limit", "-rate-limit", "-db"}},
		{[]string{"plans", "set", "-h"}, "Usage: keyd plans ", []string{"-alias-limit", "-rate-limit"}},
		{[]string{"backup", "--help"}, "Usage: keyd backup ", []string{"-to", "-no-key"}},
		{[]string{"store", "copy", "--help"}, "Usage: keyd store copy ", []string{"-from", "-to", "-secret-key"}},
		{[]string{"seed", "--help"}, "Usage: keyd seed ", []string{"-keys", "-sample"}},
		{[]string{"webhooks", "listen", "--help"}, "Usage: keyd webhooks listen ", []string{"-secret", "-addr"}},
	} {
		_, errOut, err := c.run(tt.args...)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, tt.usage) {
			t.Errorf("keyd %s: %v, want help starting %q:\n%s", strings.Join(tt.args, " "), err, tt.usage, errOut)
			continue
		}
		for _, f := range tt.flags {
			if !strings.Contains(errOut, "  "+f+" ") && !strings.Contains(errOut, "  "+f+"\n") {
				t.Errorf("keyd %s does not list %s:\n%s", strings.Join(tt.args, " "), f, errOut)
			}
		}
	}
}

// TestREADMEBackupExample: the README's example of keyd backup is what keyd
// backup prints, schema version included.
func TestREADMEBackupExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const db, to = "/var/lib/keyd/keyd.db", "/var/backups/keyd/keyd-2026-11-22.db"
	c := newCLI(t)
	dest := filepath.Join(t.TempDir(), "copy.db")
	first, _, _ := strings.Cut(c.mustRun("backup", "--to", dest), "\n")
	example := regexp.MustCompile(`\(\d+ bytes`).ReplaceAllString(strings.NewReplacer(c.path, db, dest, to).Replace(first), "(... bytes")
	if !strings.Contains(example, fmt.Sprintf("schema version %d,", store.LatestSchemaVersion())) {
		t.Fatalf("keyd backup printed %q", first)
	}
	if !strings.Contains(string(readme), "\n# "+example+"\n") {
		t.Errorf("README.md's keyd backup example should read:\n# %s", example)
	}
}
