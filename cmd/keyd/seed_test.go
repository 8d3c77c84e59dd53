package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestSeedCommand(t *testing.T) {
	dir := t.TempDir()
	db, sample := filepath.Join(dir, "k.db"), filepath.Join(dir, "keys.txt")
	out, err := runCLI(t, "seed", "--db", db, "--keys", "2000", "--sample", sample, "--sample-size", "50")
	if err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "seeded 2000 keys") {
		t.Fatalf("output: %s", out)
	}
	b, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Fields(string(b)); len(lines) != 50 {
		t.Fatalf("sample has %d lines", len(lines))
	}
	if info, _ := os.Stat(sample); info.Mode().Perm() != 0o600 {
		t.Fatalf("sample file mode %v", info.Mode().Perm())
	}

	// A database with a real account is refused without --force.
	real := filepath.Join(dir, "real.db")
	if out, err := runCLI(t, "migrate", "--db", real); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "accounts", "create", "--db", real, "--name", "Shop", "--email", "owner@example.com"); err != nil {
		t.Fatalf("accounts create: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "seed", "--db", real, "--keys", "10"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("seed on a real database: %v", err)
	}
	if out, err := runCLI(t, "seed", "--db", real, "--keys", "10", "--force"); err != nil {
		t.Fatalf("seed --force: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "seed", "--db", real); err == nil {
		t.Fatal("seed without --keys was accepted")
	}
}

func TestPprofNeedsLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:6060": true,
		"0.0.0.0:6060": false, ":6060": false, "10.0.0.1:6060": false, "example.com:6060": false} {
		if isLoopbackAddr(addr) != ok {
			t.Errorf("isLoopbackAddr(%q) = %v", addr, !ok)
		}
	}
}
