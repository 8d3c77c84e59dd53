package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyd keeps its key index in a snapshot next to the database: written
// after the first start's full load and at shutdown, read at the next start,
// which then sees changes made while it was down (by the CLI here).
func TestServeStartsFromTheIndexSnapshot(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "keyd.db")
	first := serveInProcess(t, dbPath)
	c := &client{t: t, base: first.base, http: &http.Client{Timeout: 30 * time.Second}}
	status, out := c.admin("POST", "/admin/v1/accounts", `{"name":"Acme","email":"ops@acme.test","plan":"pro","credits":100}`)
	if status != http.StatusCreated {
		t.Fatalf("create account: %d %v", status, out)
	}
	key := out["key"].(string)
	accountID := out["account"].(map[string]any)["id"].(string)
	first.stop()
	if !strings.Contains(first.stderr.String(), "index_from=database") {
		t.Errorf("the first start did not load the database:\n%s", first.stderr.String())
	}
	if _, err := os.Stat(dbPath + ".index"); err != nil {
		t.Fatalf("no snapshot next to the database after a shutdown: %v", err)
	}

	// While keyd is down, the operator suspends the account.
	if out, err := runCLI(t, "accounts", "suspend", "--db", dbPath, "--account", accountID); err != nil {
		t.Fatalf("suspend: %v: %s", err, out)
	}

	second := serveInProcess(t, dbPath)
	c.base = second.base
	if code := c.code(key); code != "ACCOUNT_SUSPENDED" {
		t.Errorf("a key of the account suspended while keyd was down validates as %s", code)
	}
	second.stop() // the log is written behind the server: stopping it writes it all
	if log := second.stderr.String(); !strings.Contains(log, `index_from="snapshot, 1 later events applied"`) {
		t.Errorf("the second start did not use the snapshot and catch up:\n%s", log)
	}

	// --index-snapshot off: the database is loaded, no snapshot is read.
	third := serveInProcess(t, dbPath, "--index-snapshot", "off")
	third.stop()
	if log := third.stderr.String(); !strings.Contains(log, "index_from=database") {
		t.Errorf("--index-snapshot off still used the snapshot:\n%s", log)
	}
}
