package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"keyd/store/storetest"
)

// copyFixture is a database with a row in every table, and what a test
// needs to find them again.
type copyFixture struct {
	db           *DB
	dsn          string
	key          []byte // the secret key its secrets are sealed with
	primary      string // the account's primary key
	alias        string
	subPrimary   string
	accountID    string
	aliasID      string
	session      string
	receiptKID   string
	lastEvent    int64 // the last event number ever written
	lastAttempt  int64
	maxKeyRowid  int64
	pendingCount int
}

// newCopyFixture fills the database at dsn: plans, an account with a
// subaccount, an alias with limits, site activations, usage, charges and
// their idempotency records, a webhook with a rotated secret and pending
// messages, an attempt, a session, a sign-in link and a receipt key. The
// last event is then deleted, so that the last event number written is
// past the highest one kept.
func newCopyFixture(t *testing.T, dsn string) copyFixture {
	t.Helper()
	ctx := context.Background()
	key := bytes.Repeat([]byte{0x6b}, SecretKeySize)
	db := mustOpenDBAt(t, dsn, WithSecretKey(key))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	op := OperatorActor("203.0.113.5")
	_, err := db.PutPlan(ctx, op, Plan{Name: "gold", AliasLimit: ptr(3), RateLimitPerMinute: ptr(600)})
	must(err)
	acc := mustCreate(t, db, "Acme", "mega", 1000)
	id := acc.Account.ID
	owner := Actor{Type: ActorPrimary, KeyID: acc.Key.ID, IP: "198.51.100.1"}
	sub, err := db.CreateSubaccount(ctx, owner, id, NewAccount{Name: "Branch", Email: "b@acme.test", Credits: 0})
	must(err)
	_, err = db.AllocateCredits(ctx, owner, id, sub.Account.ID, 100)
	must(err)
	alias, err := db.CreateAlias(ctx, owner, id, NewAlias{Name: "client-a", Scopes: []string{"*"},
		SpendLimit: &SpendLimit{Limit: 50, Period: PeriodDay}, MaxSites: ptr(2)})
	must(err)
	w, err := db.CreateWebhook(ctx, owner, id, NewWebhook{URL: "https://receiver.example/hook", Events: []string{"*"}, Secret: testSecret()})
	must(err)
	_, err = db.RotateWebhookSecret(ctx, owner, id, w.ID, testSecret(), 24*time.Hour)
	must(err)

	v := mustLookup(t, db, alias.Secret)
	_, err = db.UseSite(ctx, v, "https://shop.example/", db.Now())
	must(err)
	_, err = db.Spend(ctx, &v, 3, "order-1")
	must(err)
	db.RecordValidation(v, true, SiteReport{Site: "https://shop.example/", Plugin: "shortpixel", PluginVersion: "5.1", WPVersion: "6.5"}, db.Now())
	db.RecordValidation(v, false, SiteReport{Site: "https://other.example/"}, db.Now())
	must(db.FlushActivity(ctx))
	session, err := db.CreateSession(ctx, id, acc.Key.ID)
	must(err)
	_, _, err = db.CreateSignInLink(ctx, op, id)
	must(err)
	rk, err := db.SigningReceiptKey(ctx)
	must(err)
	_, err = db.AddCredits(ctx, op, id, 10, "top-up")
	must(err)
	_, err = db.FanOut(ctx)
	must(err)
	due, err := db.ClaimDueMessages(ctx, "fixture", db.Now().Add(time.Hour), time.Minute, 1)
	must(err)
	if len(due) == 0 {
		t.Fatalf("%d messages due, want some", len(due))
	}
	must(db.RecordAttempt(ctx, AttemptRecord{MessageID: due[0].ID, Owner: "fixture", At: db.Now(), StatusCode: 500, Duration: time.Millisecond,
		Outcome: "http_error", NextAttemptAt: ptr(db.Now().Add(time.Minute))}))

	raw := rawSQL(t, dsn)
	lastEvent, err := db.eng.LastEventWritten(ctx, db.r)
	must(err)
	_, err = raw.ExecContext(ctx, `DELETE FROM events WHERE seq = ?`, lastEvent)
	must(err)
	return copyFixture{
		db: db, dsn: dsn, key: key, primary: acc.Secret, alias: alias.Secret, subPrimary: sub.Secret,
		accountID: id, aliasID: alias.Key.ID, session: session, receiptKID: rk.KID,
		lastEvent:    lastEvent,
		lastAttempt:  queryInt(t, db, `SELECT max(id) FROM webhook_attempts`),
		maxKeyRowid:  queryInt(t, db, `SELECT max(rowid) FROM keys`),
		pendingCount: len(due),
	}
}

// rawSQL is plain connections to the database at dsn, closed when t ends.
func rawSQL(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := OpenSQL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestCopyIntoTestEngine copies a SQLite file, as keyd keeps one, into the
// engine the tests run on (a new SQLite file, or PostgreSQL with the tag
// postgres) while the source is open, and checks the copy through the
// store: keys validate, sealed secrets open, every table has the source's
// rows, and new rows number past the copied ones.
func TestCopyIntoTestEngine(t *testing.T) {
	fx := newCopyFixture(t, filepath.Join(t.TempDir(), "keyd.db"))
	checkCopied(t, fx, storetest.DSN(t))
}

// TestCopyFromTestEngine copies the other way: from the engine the tests
// run on into a new SQLite file.
func TestCopyFromTestEngine(t *testing.T) {
	fx := newCopyFixture(t, storetest.DSN(t))
	checkCopied(t, fx, filepath.Join(t.TempDir(), "copy.db"))
}

// checkCopied copies fx's database to dst and checks the copy.
func checkCopied(t *testing.T, fx copyFixture, dst string) {
	t.Helper()
	ctx := context.Background()
	rep, err := Copy(ctx, fx.dsn, dst, CopyOptions{SecretKey: fx.key})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if rep.SchemaVersion != LatestSchemaVersion() || !rep.KeyChecked || rep.SealedOpened != 4 {
		t.Errorf("report: version %d, key checked %v, %d sealed values opened; want %d, true, 4 (check, two webhook secrets, receipt key)",
			rep.SchemaVersion, rep.KeyChecked, rep.SealedOpened, LatestSchemaVersion())
	}
	if len(rep.Tables) != len(copyTables) {
		t.Fatalf("%d tables copied, want %d", len(rep.Tables), len(copyTables))
	}
	src := rawSQL(t, fx.dsn)
	for _, tc := range rep.Tables {
		var n int64
		if err := src.QueryRowContext(ctx, `SELECT count(*) FROM `+tc.Name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 || tc.Rows != n || tc.Sampled != int(min(n, 100)) {
			t.Errorf("%s: %d rows copied and %d compared, the source has %d (every table must have rows here)", tc.Name, tc.Rows, tc.Sampled, n)
		}
	}

	db := mustOpenDBAt(t, dst, WithSecretKey(fx.key))
	for _, secret := range []string{fx.primary, fx.alias, fx.subPrimary} {
		if v := mustLookup(t, db, secret); v.AccountID == "" {
			t.Errorf("key ...%s has no account in the copy", KeyHint(secret))
		}
	}
	if err := db.PrepareSecrets(ctx); err != nil {
		t.Fatalf("the source's key does not open the copy's secrets: %v", err)
	}
	// The outbox, webhook secrets opened, as the source has it.
	now := fx.db.Now().Add(time.Hour)
	want, err := fx.db.ClaimDueMessages(ctx, "check", now, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.ClaimDueMessages(ctx, "check", now, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != fx.pendingCount || !reflect.DeepEqual(got, want) {
		t.Errorf("due messages in the copy:\n%+v\nwant the source's:\n%+v", got, want)
	}
	// Pages and orders that rest on rowids and event numbers.
	for name, list := range map[string]func(*DB) (any, error){
		"accounts": func(d *DB) (any, error) { return d.ListAccounts(ctx, AccountQuery{Limit: 100}) },
		"aliases":  func(d *DB) (any, error) { return d.ListAliases(ctx, fx.accountID, "", "", 100) },
		"audit":    func(d *DB) (any, error) { return d.ListAudit(ctx, fx.accountID, "", 100) },
		"plans":    func(d *DB) (any, error) { return d.ListPlans(ctx) },
		"usage":    func(d *DB) (any, error) { return d.ListUsage(ctx, fx.accountID, "", "", "") },
		"sites":    func(d *DB) (any, error) { return d.ListKeySites(ctx, fx.accountID, fx.aliasID) },
	} {
		a, errA := list(fx.db)
		b, errB := list(db)
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s in the copy: %+v (%v), want the source's %+v (%v)", name, b, errB, a, errA)
		}
	}
	if s, err := db.Session(ctx, fx.session); err != nil || s.AccountID != fx.accountID {
		t.Errorf("session in the copy: %+v, %v", s, err)
	}
	if rk, err := db.SigningReceiptKey(ctx); err != nil || rk.KID != fx.receiptKID {
		t.Errorf("receipt key in the copy: %v, %v; want %s", rk.KID, err, fx.receiptKID)
	}
	v := mustLookup(t, db, fx.alias)
	if c, err := db.Spend(ctx, &v, 3, "order-1"); err != nil || !c.Replayed {
		t.Errorf("a replayed charge in the copy: %+v, %v; want the first answer replayed", c, err)
	}

	// New rows take numbers past the copied ones, event numbers past every
	// one the source wrote, even the deleted last one.
	alias, err := db.CreateAlias(ctx, SystemActor, fx.accountID, NewAlias{Name: "after the copy"})
	if err != nil {
		t.Fatalf("create an alias in the copy: %v", err)
	}
	if r := queryInt(t, db, `SELECT rowid FROM keys WHERE id = ?`, alias.Key.ID); r <= fx.maxKeyRowid {
		t.Errorf("new key's rowid %d, want past %d", r, fx.maxKeyRowid)
	}
	if seq := queryInt(t, db, `SELECT min(seq) FROM events WHERE target_id = ?`, alias.Key.ID); seq <= fx.lastEvent {
		t.Errorf("new event's seq %d, want past the source's last %d", seq, fx.lastEvent)
	}
	if err := db.RecordAttempt(ctx, AttemptRecord{MessageID: got[0].ID, Owner: "check", At: db.Now(), StatusCode: 200, Duration: time.Millisecond,
		Outcome: "delivered", Delivered: true}); err != nil {
		t.Fatalf("record an attempt in the copy: %v", err)
	}
	if id := queryInt(t, db, `SELECT max(id) FROM webhook_attempts`); id <= fx.lastAttempt {
		t.Errorf("new attempt's id %d, want past %d", id, fx.lastAttempt)
	}
}

// TestCopyRefuses checks what Copy will not do, and that a refusal leaves
// the destination as it was.
func TestCopyRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fx := newCopyFixture(t, filepath.Join(dir, "keyd.db"))

	t.Run("a destination with accounts", func(t *testing.T) {
		dst := storetest.DSN(t)
		full := mustOpenDBAt(t, dst)
		mustCreate(t, full, "already here", "free", 0)
		_, err := Copy(ctx, fx.dsn, dst, CopyOptions{})
		if !errors.Is(err, ErrCopyDestinationNotEmpty) || !strings.Contains(err.Error(), "already holds accounts (1)") {
			t.Fatalf("err = %v, want ErrCopyDestinationNotEmpty", err)
		}
		if n := queryInt(t, full, `SELECT count(*) FROM accounts`); n != 1 {
			t.Errorf("%d accounts after the refusal, want 1", n)
		}
	})
	t.Run("another secret key", func(t *testing.T) {
		dst := storetest.DSN(t)
		_, err := Copy(ctx, fx.dsn, dst, CopyOptions{SecretKey: bytes.Repeat([]byte{1}, SecretKeySize)})
		if !errors.Is(err, ErrSecretKeyMismatch) {
			t.Fatalf("err = %v, want ErrSecretKeyMismatch", err)
		}
		// Rolled back: the same copy with the right key goes through.
		if _, err := Copy(ctx, fx.dsn, dst, CopyOptions{SecretKey: fx.key}); err != nil {
			t.Fatalf("copy after the refusal: %v", err)
		}
	})
	t.Run("a failed copy removes the file it made", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "copy.db")
		if _, err := Copy(ctx, fx.dsn, dst, CopyOptions{SecretKey: bytes.Repeat([]byte{1}, SecretKeySize)}); err == nil {
			t.Fatal("copied with another key")
		}
		if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 0 {
			t.Errorf("left %v behind", entries)
		}
	})
	t.Run("no source", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.db")
		_, err := Copy(ctx, missing, storetest.DSN(t), CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), "no database at") {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the missing source was created: %v", err)
		}
	})
	t.Run("the same database", func(t *testing.T) {
		if _, err := Copy(ctx, fx.dsn, fx.dsn, CopyOptions{}); err == nil {
			t.Fatal("copied a database onto itself")
		}
	})

	// Sources whose schema is not this build's, each a copy of fx's file
	// changed by one statement.
	for name, c := range map[string]struct{ change, want string }{
		"an older schema version":        {`DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)`, "run keyd migrate"},
		"a newer schema version":         {`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`, "newer than this keyd's"},
		"a table copy does not know":     {`CREATE TABLE later_table (id INTEGER PRIMARY KEY)`, "table later_table is not one copy knows"},
		"a column the destination lacks": {`ALTER TABLE accounts ADD COLUMN later_column TEXT`, "table accounts has other columns"},
	} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "changed.db")
			if err := fx.db.Backup(ctx, src); err != nil {
				t.Fatal(err)
			}
			if _, err := rawSQL(t, src).ExecContext(ctx, c.change); err != nil {
				t.Fatal(err)
			}
			dst := storetest.DSN(t)
			_, err := Copy(ctx, src, dst, CopyOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestCopyCheckFindsDifferences: the check that runs before the copy commits
// tells a row whose value differs, and a table whose count differs.
func TestCopyCheckFindsDifferences(t *testing.T) {
	ctx := context.Background()
	fx := newCopyFixture(t, filepath.Join(t.TempDir(), "keyd.db"))
	dst := filepath.Join(t.TempDir(), "copy.db")
	if _, err := Copy(ctx, fx.dsn, dst, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := rawSQL(t, dst)
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`UPDATE accounts SET credits = credits + 1`, nil},
		{`UPDATE keys SET hash = zeroblob(32) WHERE id = ?`, []any{fx.aliasID}},
		{`DELETE FROM console_links`, nil},
	} {
		if _, err := changed.ExecContext(ctx, q.query, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	src := rawSQL(t, fx.dsn)
	stx, err := src.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stx.Rollback()
	dtx, err := changed.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dtx.Rollback()
	tables, err := copyColumns(ctx, engineFor(fx.dsn).(copyEngine), stx, engineFor(dst).(copyEngine), dtx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ table, want string }{
		{"accounts", "credits is"},
		{"keys", "hash is"},
		{"console_links", "has 1 rows at the source, 1 were copied and the destination has 0"},
	} {
		i := slices.IndexFunc(tables, func(ct copyTable) bool { return ct.name == tc.table })
		var n int64
		if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM `+tc.table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		_, err := checkCopy(ctx, stx, dtx, tables[i], n, 1000)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.table, err, tc.want)
		}
	}
}
