package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keyd/store"
)

// TestCLIStoreCopy copies a database made through the command line into a
// new SQLite file: the command prints every table's rows, the same at both
// ends, says the secret key opened the copied secrets, and writes the key
// beside the copy, which then answers as the source does. A second copy into
// the same file, now holding accounts, is refused and changes nothing.
func TestCLIStoreCopy(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "ops@acme.test", "--plan", "pro", "--credits", "10")
	c.mustRun("aliases", "create", "--account", id, "--name", "Client site")
	c.mustRun("receipts", "rotate")
	dst := filepath.Join(t.TempDir(), "copy.db")

	out := c.mustRun("store", "copy", "--to", dst)
	first, rest, _ := strings.Cut(out, "\n")
	if want := fmt.Sprintf("copied %s to %s (schema version %d)", c.path, dst, store.LatestSchemaVersion()); first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	table, after, _ := strings.Cut(rest, "checked: ")
	rows := tableRows(t, table, "TABLE", "ROWS", "COMPARED")
	copied := map[string]string{}
	for _, r := range rows {
		if len(r) != 3 || r[1] != r[2] {
			t.Errorf("row %q: want every row of this small database compared", r)
		}
		copied[r[0]] = r[1]
	}
	for table, n := range map[string]string{"plans": "4", "accounts": "1", "keys": "2", "receipt_keys": "1", "secret_key_check": "1"} {
		if copied[table] != n {
			t.Errorf("%s: %q rows copied, want %s", table, copied[table], n)
		}
	}
	for _, want := range []string{
		"the same rows in every table",
		"the secret key (" + store.KeyFilePath(c.path) + ") opens the 2 sealed values copied",
		"wrote the secret key to " + store.KeyFilePath(dst),
	} {
		if !strings.Contains(after, want) {
			t.Errorf("keyd store copy does not say %q:\n%s", want, out)
		}
	}
	srcKey, _ := os.ReadFile(store.KeyFilePath(c.path))
	if dstKey, err := os.ReadFile(store.KeyFilePath(dst)); err != nil || string(dstKey) != string(srcKey) {
		t.Errorf("the copy's key file: %q, %v; want the source's", dstKey, err)
	}

	copyCLI := &cli{t: t, path: dst, env: map[string]string{}}
	for _, args := range [][]string{
		{"accounts", "list"},
		{"keys", "list", "--account", id},
		{"plans", "list"},
		{"receipts", "public-key"},
	} {
		if got, want := copyCLI.mustRun(args...), c.mustRun(args...); got != want {
			t.Errorf("keyd %s on the copy:\n%s\nwant the source's:\n%s", strings.Join(args, " "), got, want)
		}
	}

	_, _, err := c.run("store", "copy", "--to", dst)
	if !errors.Is(err, store.ErrCopyDestinationNotEmpty) || !strings.Contains(err.Error(), "already holds accounts") {
		t.Errorf("a copy into a database with accounts: %v", err)
	}
	if rows := tableRows(t, copyCLI.mustRun("accounts", "list"), "ID", "NAME", "EMAIL", "PLAN", "STATUS", "CREDITS", "PARENT", "CREATED"); len(rows) != 1 {
		t.Errorf("the refused copy changed the accounts: %q", rows)
	}
}

// TestCLIStoreCopyRefuses: mistakes are usage errors that name the problem
// and create nothing.
func TestCLIStoreCopyRefuses(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "kyed.db")
	other := filepath.Join(dir, "other.db")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"store"}, "keyd store needs one of: copy"},
		{[]string{"store", "move"}, `unknown command "move"`},
		{[]string{"store", "copy"}, "needs --to"},
		{[]string{"store", "copy", "--to", c.path}, "the same database"},
		{[]string{"store", "copy", "--from", missing, "--to", other}, "no database at " + missing},
		{[]string{"store", "copy", "--to", other, "--secret-key", "short"}, "--secret-key"},
		{[]string{"store", "copy", "--to", other, "extra"}, `unexpected argument "extra"`},
	} {
		_, _, err := c.run(tt.args...)
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("keyd %s: %v, want a usage error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused copies created %v", entries)
	}

	// A key file beside the destination that holds another key would not
	// open the copied secrets: refused before anything is copied.
	c.mustRun("receipts", "rotate")
	if err := os.WriteFile(store.KeyFilePath(other), []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.run("store", "copy", "--to", other); err == nil || !strings.Contains(err.Error(), "holds another secret key") {
		t.Errorf("a copy next to another key file: %v", err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused copy created %s: %v", other, err)
	}
}

// TestREADMEStoreCopyExample: the lines of keyd store copy that the README
// shows are what it prints.
func TestREADMEStoreCopyExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.mustRun("receipts", "rotate")
	out := c.mustRun("store", "copy", "--to", filepath.Join(t.TempDir(), "copy.db"))
	numbers := regexp.MustCompile(`\d+ (rows compared|sealed values)`)
	for _, prefix := range []string{"checked: ", "the secret key ("} {
		i := strings.Index(out, "\n"+prefix)
		if i < 0 {
			t.Fatalf("keyd store copy printed no line starting %q:\n%s", prefix, out)
		}
		line, _, _ := strings.Cut(out[i+1:], "\n")
		line = strings.ReplaceAll(line, store.KeyFilePath(c.path), "/var/lib/keyd/keyd.db.key")
		line = numbers.ReplaceAllString(line, "... $1")
		if !strings.Contains(string(readme), "\n# "+line+"\n") {
			t.Errorf("README.md's keyd store copy example should read:\n# %s", line)
		}
	}
}
