package console_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	pluginapi "keyd/plugin-api"
	"keyd/store"
	"keyd/store/storetest"
)

// Sizes of the large account the console must stay fast for.
const (
	benchAliases = 10_000
	benchEvents  = 100_000
)

// newLargeEnv is an env whose account has benchAliases aliases and
// benchEvents audit rows. The rows are written with SQL in one transaction
// (through the store this would take minutes), then the store is reopened
// so that its key index loads them.
func newLargeEnv(b *testing.B) *env {
	b.Helper()
	dsn := storetest.DSN(b)
	e := &env{tb: b, clock: &fakeClock{t: t0}}
	db, err := store.Open(context.Background(), dsn, storeOptions(dsn, store.WithClock(e.clock.Now))...)
	if err != nil {
		b.Fatal(err)
	}
	e.db = db
	e.acc = e.account("Large")
	limit := benchAliases + 10
	if _, err := db.UpdateAccount(context.Background(), store.OperatorActor(""), e.acc.Account.ID,
		store.AccountPatch{SetAliasLimit: true, AliasLimitOverride: &limit}); err != nil {
		b.Fatal(err)
	}
	db.Close()

	raw, err := store.OpenSQL(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	tx, err := raw.Begin()
	if err != nil {
		b.Fatal(err)
	}
	keyStmt, err := tx.Prepare(`INSERT INTO keys (id, account_id, type, name, name_fold, hint, hash, status, scopes, allowed_sites,
		expires_at, created_at, updated_at) VALUES (?, ?, 'alias', ?, ?, ?, ?, ?, '["*"]', ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	created := t0.Unix() - 86400*30
	for i := 0; i < benchAliases; i++ {
		name := fmt.Sprintf("Client site %05d", i)
		hash := sha256.Sum256([]byte(name))
		status := store.KeyActive
		if i%7 == 0 {
			status = store.KeyInactive
		}
		var expires any
		if i%3 == 0 {
			expires = t0.Unix() + int64(i)*600
		}
		if _, err := keyStmt.Exec(fmt.Sprintf("key_b%015x", i), e.acc.Account.ID, name, store.FoldName(name), fmt.Sprintf("%04d", i%10000),
			hash[:], status, fmt.Sprintf(`["site%d.example"]`, i), expires, created+int64(i), created+int64(i)); err != nil {
			b.Fatal(err)
		}
	}
	evStmt, err := tx.Prepare(`INSERT INTO events (account_id, account_seq, type, actor_type, actor_id, actor_ip, target_id, data, created_at_ms, channel)
		VALUES (?, ?, 'alias.updated', 'primary', ?, '192.0.2.1', ?, '{"name":"x"}', ?, 'console')`)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < benchEvents; i++ {
		if _, err := evStmt.Exec(e.acc.Account.ID, 1000+i, e.acc.Key.ID, fmt.Sprintf("key_b%015x", i%benchAliases), (created+int64(i))*1000); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}

	if e.db, err = store.Open(context.Background(), dsn, storeOptions(dsn, store.WithClock(e.clock.Now))...); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.db.Close() })
	if e.h, err = pluginapi.New(e.db, pluginapi.Config{Now: e.clock.Now}); err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkConsolePages renders console pages of an account with 10,000
// aliases and 100,000 audit rows; each must take well under 50 ms.
func BenchmarkConsolePages(b *testing.B) {
	e := newLargeEnv(b)
	br := e.browser()
	br.signIn(e.acc.Secret)
	middle := fmt.Sprintf("key_b%015x", benchAliases/2)
	for _, bc := range []struct{ name, path string }{
		{"keys", "/console/keys"},
		{"keys-middle-page", "/console/keys?before=" + url.QueryEscape(middle)},
		{"keys-last-page", "/console/keys?before=" + url.QueryEscape(fmt.Sprintf("key_b%015x", 30))},
		{"overview", "/console/overview"},
		{"usage", "/console/usage"},
		{"subaccounts", "/console/subaccounts"},
		{"webhooks", "/console/webhooks"},
		{"audit", "/console/audit"},
		{"audit-of-one-key", "/console/audit?key=" + url.QueryEscape(fmt.Sprintf("key_b%015x", 7))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if p := br.get(bc.path); p.status != http.StatusOK {
				b.Fatalf("%s: %d\n%s", bc.path, p.status, p.body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				br.get(bc.path)
			}
		})
	}
}
