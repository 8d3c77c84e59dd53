package pluginapi_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyd/store"
)

// TestNoPlaintextKeyOnDisk creates accounts, resets keys and validates them,
// then searches the raw bytes of the database and its write-ahead log for
// every plaintext key that was handed out.
func TestNoPlaintextKeyOnDisk(t *testing.T) {
	// It reads SQLite's files, so it runs on SQLite whichever engine the
	// tests are built for.
	path := filepath.Join(t.TempDir(), "keyd.db")
	e := newEnvAt(t, testToken, path)
	var secrets []string
	for i, plan := range []string{"free", "pro", "mega", "enterprise", "pro"} {
		id, key := e.createAccount("Account "+string(rune('A'+i)), plan, int64(i*100))
		secrets = append(secrets, key)
		for j, grace := range []string{"0", "24h"} {
			res := e.doJSON("POST", "/v1/account/reset-key", `{"grace_period":"`+grace+`"}`, "X-API-Key", key)
			if res.status != 200 {
				t.Fatalf("reset %d of %s: %d %s", j, id, res.status, res.raw)
			}
			key = str(res.body, "key")
			secrets = append(secrets, key)
		}
		if i == 4 {
			if res := e.admin("PATCH", "/admin/v1/accounts/"+id, `{"status":"suspended"}`); res.status != 200 {
				t.Fatal(res.raw)
			}
		}
	}
	c := e.createStoreAccount("From the store", "pro", 1)
	secrets = append(secrets, c.Secret)
	for _, k := range secrets {
		e.validateJSON(k)
		e.validateForm(k)
		e.doJSON("POST", "/v1/validate", `{"site":"https://example.com/`+k[:4]+`","plugin":"p"}`, "X-API-Key", k)
	}
	if err := e.db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Something was written: the activity reached the database.
	var used int
	if err := openSQL(t, e.dsn).QueryRow(`SELECT count(*) FROM key_last_used`).Scan(&used); err != nil || used == 0 {
		t.Fatalf("no key has a last use after the flush (%d, %v)", used, err)
	}

	scan := func(when string) {
		t.Helper()
		searched := 0
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			b, err := os.ReadFile(path + suffix)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			searched += len(b)
			for _, k := range secrets {
				if bytes.Contains(b, []byte(k)) {
					t.Errorf("%s: %s holds the plaintext key ...%s", when, "keyd.db"+suffix, store.KeyHint(k))
				}
				// Hints are stored; a longer tail of the key must not be.
				if bytes.Contains(b, []byte(k[len(k)-8:])) {
					t.Errorf("%s: %s holds the last 8 characters of key ...%s", when, "keyd.db"+suffix, store.KeyHint(k))
				}
			}
		}
		if searched == 0 {
			t.Fatalf("%s: no database file to search", when)
		}
	}
	// While open, recent writes sit in the WAL; after closing they are
	// checkpointed into the main file.
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no write-ahead log while the database is open: %v", err)
	}
	scan("while open")
	e.db.Close()
	scan("after close")
	if strings.Contains(e.log.String(), secrets[0]) {
		t.Error("the request log holds a key")
	}
}
