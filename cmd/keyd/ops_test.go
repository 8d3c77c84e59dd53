package main

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"keyd/store"
)

// inProcess is `keyd serve` running in this process.
type inProcess struct {
	base, metrics string
	stdout        *lockedBuffer
	stderr        *lockedBuffer
	stop          func() // shuts keyd down as SIGTERM does and waits; once
}

// serveInProcess runs keyd serve with the admin token on dbPath until the
// test ends.
func serveInProcess(t *testing.T, dbPath string, args ...string) *inProcess {
	t.Helper()
	env := map[string]string{"KEYD_ADMIN_TOKEN": e2eToken}
	p := &inProcess{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", dbPath}, args...),
			func(k string) string { return env[k] }, p.stdout, p.stderr)
	}()
	p.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(p.stop)
	listening := regexp.MustCompile(`keyd listening on (http://\S+)\n`)
	metrics := regexp.MustCompile(`keyd metrics on (http://\S+)\n`)
	waitFor(t, 60*time.Second, "keyd to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve returned before listening: %v\n%s", err, p.stderr.String())
		default:
		}
		m := listening.FindStringSubmatch(p.stdout.String())
		if m == nil {
			return false
		}
		p.base = m[1]
		if m := metrics.FindStringSubmatch(p.stdout.String()); m != nil {
			p.metrics = m[1]
		}
		return true
	})
	return p
}

// scrapeMetrics reads a /metrics page into series -> value.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsEndpoint(t *testing.T) {
	p := serveInProcess(t, filepath.Join(t.TempDir(), "keyd.db"), "--metrics-addr", "127.0.0.1:0")
	if p.metrics == "" {
		t.Fatalf("no metrics address printed:\n%s", p.stdout.String())
	}
	c := &client{t: t, base: p.base, http: &http.Client{Timeout: 30 * time.Second}}
	status, out := c.admin("POST", "/admin/v1/accounts", `{"name":"Acme","email":"ops@acme.test","plan":"pro","credits":100}`)
	if status != http.StatusCreated {
		t.Fatalf("create account: %d %v", status, out)
	}
	key := out["key"].(string)
	for range 2 {
		if code := c.code(key); code != "VALID" {
			t.Fatalf("validate: %s", code)
		}
	}
	if code := c.code("AAAAAAAAAAAAAAAAAAAA"); code != "NOT_FOUND" {
		t.Fatalf("validate an unknown key: %s", code)
	}
	if status, out := c.call("POST", "/v1/usage", `{"units": 7}`, "X-API-Key", key); status != 200 {
		t.Fatalf("usage: %d %v", status, out)
	}
	// Not on the API's listener.
	if status, _ := c.call("GET", "/metrics", ""); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener: %d, want 404", status)
	}

	got := scrapeMetrics(t, p.metrics)
	for series, want := range map[string]float64{
		`keyd_http_requests_total{method="POST",route="/admin/v1/accounts",status="201"}`: 1,
		`keyd_http_requests_total{method="POST",route="/v1/validate",status="200"}`:       2,
		`keyd_http_requests_total{method="POST",route="/v1/validate",status="401"}`:       1,
		`keyd_http_requests_total{method="GET",route="unmatched",status="404"}`:           1,
		`keyd_validations_total{code="VALID"}`:                                            2,
		`keyd_validations_total{code="NOT_FOUND"}`:                                        1,
		`keyd_validate_duration_seconds_count`:                                            3,
		`keyd_credits_spent_total`:                                                        7,
		`keyd_webhook_outbox_pending`:                                                     0,
		`keyd_replicas_live`:                                                              1,
		`keyd_replica_cut_off`:                                                            0,
		`keyd_job_failures_total{job="flush-activity"}`:                                   0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	if _, ok := got[`keyd_job_runs_total{job="webhook-sweep"}`]; !ok {
		t.Error("no keyd_job_runs_total for webhook-sweep")
	}
	if _, ok := got["process_open_fds"]; !ok {
		t.Error("no process collector series")
	}
}

func TestMetricsOffByDefault(t *testing.T) {
	p := serveInProcess(t, filepath.Join(t.TempDir(), "keyd.db"))
	if p.metrics != "" || strings.Contains(p.stdout.String(), "metrics") {
		t.Fatalf("metrics served without --metrics-addr:\n%s", p.stdout.String())
	}
}

func TestBackupCommandWhileServing(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "keyd.db")
	p := serveInProcess(t, dbPath)
	c := &client{t: t, base: p.base, http: &http.Client{Timeout: 30 * time.Second}}
	status, out := c.admin("POST", "/admin/v1/accounts", `{"name":"Acme","email":"ops@acme.test","plan":"mega","credits":100000}`)
	if status != http.StatusCreated {
		t.Fatalf("create account: %d %v", status, out)
	}
	key := out["key"].(string)
	accountID := out["account"].(map[string]any)["id"].(string)

	// Keep writing (aliases made and deleted, credits spent) while the
	// backup runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			status, out := c.call("POST", "/v1/aliases", `{"name":"alias `+strconv.Itoa(i)+`"}`, "X-API-Key", key)
			if status != http.StatusCreated {
				t.Errorf("create alias: %d %v", status, out)
				return
			}
			id := out["alias"].(map[string]any)["id"].(string)
			if status, _ := c.call("DELETE", "/v1/aliases/"+id, "", "X-API-Key", key); status != http.StatusNoContent {
				t.Errorf("delete alias: %d", status)
				return
			}
			if status, _ := c.call("POST", "/v1/usage", `{"units": 1}`, "X-API-Key", key); status != http.StatusOK {
				t.Errorf("usage: %d", status)
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)

	cl := &cli{t: t, path: dbPath, env: map[string]string{}}
	dest := filepath.Join(dir, "backup.db")
	printed := cl.mustRun("backup", "--to", dest)
	close(stop)
	wg.Wait()
	if !strings.Contains(printed, "integrity ok") || !strings.Contains(printed, "copied the secret key") {
		t.Errorf("backup printed:\n%s", printed)
	}
	for _, f := range []string{dest, dest + ".key"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	orig, err := os.ReadFile(store.KeyFilePath(dbPath))
	if err != nil {
		t.Fatal(err)
	}
	if copied, _ := os.ReadFile(dest + ".key"); string(copied) != string(orig) {
		t.Error("the copied secret key differs from the original")
	}

	// The backup opens as a keyd database with the same account and key,
	// and its webhook secrets open with the copied key.
	bak, err := store.Open(context.Background(), dest)
	if err != nil {
		t.Fatal(err)
	}
	defer bak.Close()
	if err := bak.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := bak.PrepareSecrets(context.Background()); err != nil {
		t.Fatalf("the backup's secrets with the copied key: %v", err)
	}
	if v, ok := bak.LookupKey(store.HashKey(key)); !ok || v.AccountID != accountID {
		t.Fatalf("the account's key is not in the backup: %+v %v", v, ok)
	}
	accounts := cl.mustRun("accounts", "list", "--db", dest)
	if !strings.Contains(accounts, accountID) {
		t.Errorf("accounts list of the backup:\n%s", accounts)
	}

	// Never over an existing file; --to is required.
	if _, _, err := cl.run("backup", "--to", dest); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("backup over an existing file: %v", err)
	}
	if _, _, err := cl.run("backup"); !errors.As(err, new(usageError)) {
		t.Errorf("backup without --to: %v", err)
	}
	if _, _, err := cl.run("backup", "--db", filepath.Join(dir, "missing.db"), "--to", filepath.Join(dir, "x.db")); err == nil {
		t.Error("backup of a missing database succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Error("backup created the missing database")
	}
	noKey := filepath.Join(dir, "nokey.db")
	if out := cl.mustRun("backup", "--to", noKey, "--no-key"); !strings.Contains(out, "was not copied") {
		t.Errorf("backup --no-key printed:\n%s", out)
	}
	if _, err := os.Stat(noKey + ".key"); !errors.Is(err, os.ErrNotExist) {
		t.Error("--no-key copied the key")
	}
}
