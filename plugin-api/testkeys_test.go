package pluginapi_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	pluginapi "keyd/plugin-api"
)

// testKeyAnswers is what each documented test key answers: validate's
// status and code, then usage's.
var testKeyAnswers = []struct {
	key                          string
	validateStatus               int
	validateCode                 string
	usageStatus                  int
	usageCode                    string
	rotation, expiry, retryAfter bool
}{
	{key: "testVALID00000000000", validateStatus: 200, validateCode: "VALID", usageStatus: 200},
	{key: "testROTATION00000000", validateStatus: 200, validateCode: "VALID", usageStatus: 200, rotation: true},
	{key: "testEXPIRED000000000", validateStatus: 401, validateCode: "EXPIRED", usageStatus: 401, usageCode: "EXPIRED", expiry: true},
	{key: "testINACTIVE00000000", validateStatus: 401, validateCode: "INACTIVE", usageStatus: 401, usageCode: "INACTIVE"},
	{key: "testREVOKED000000000", validateStatus: 401, validateCode: "REVOKED", usageStatus: 401, usageCode: "REVOKED"},
	{key: "testACCOUNTSUSPENDED", validateStatus: 401, validateCode: "ACCOUNT_SUSPENDED", usageStatus: 401, usageCode: "ACCOUNT_SUSPENDED"},
	{key: "testSCOPEDENIED00000", validateStatus: 403, validateCode: "SCOPE_DENIED", usageStatus: 403, usageCode: "SCOPE_DENIED"},
	{key: "testSITENOTALLOWED00", validateStatus: 403, validateCode: "SITE_NOT_ALLOWED", usageStatus: 403, usageCode: "SITE_NOT_ALLOWED"},
	{key: "testSITELIMITREACHED", validateStatus: 403, validateCode: "SITE_LIMIT_REACHED", usageStatus: 403, usageCode: "SITE_LIMIT_REACHED"},
	{key: "testRATELIMITED00000", validateStatus: 429, validateCode: "RATE_LIMITED", usageStatus: 429, usageCode: "RATE_LIMITED", retryAfter: true},
	{key: "testINSUFFICIENTCRED", validateStatus: 200, validateCode: "VALID", usageStatus: 402, usageCode: "INSUFFICIENT_CREDITS"},
	{key: "testKEYSPENDLIMIT000", validateStatus: 200, validateCode: "VALID", usageStatus: 402, usageCode: "KEY_SPEND_LIMIT_REACHED"},
}

// withTestKeys rebuilds e's router with test keys on.
func withTestKeys(e *testEnv) {
	e.tb.Helper()
	h, err := pluginapi.New(e.db, pluginapi.Config{AdminToken: e.token, Now: e.clock.Now, TestKeys: true})
	if err != nil {
		e.tb.Fatal(err)
	}
	e.h = h
}

// TestTestKeysOffByDefault: without --test-keys a test key is a key like
// any other, and none is stored.
func TestTestKeysOffByDefault(t *testing.T) {
	e := newEnv(t, testToken)
	for _, a := range testKeyAnswers {
		checkFailure(t, e.validateJSON(a.key), 401, "NOT_FOUND")
		checkError(t, e.doJSON("POST", "/v1/usage", `{"units":1}`, "X-API-Key", a.key), 401, "NOT_FOUND")
	}
}

// TestTestKeys: each test key gives its one answer on validate and usage,
// whatever the request, and nothing is charged, recorded or announced.
func TestTestKeys(t *testing.T) {
	e := newEnv(t, testToken)
	withTestKeys(e)
	for _, a := range testKeyAnswers {
		for _, body := range []string{`{"key":"` + a.key + `"}`,
			`{"key":"` + a.key + `","site":"https://shop.example","scope":"optimize","plugin":"p"}`} {
			r := e.doJSON("POST", "/v1/validate", body)
			if r.status != a.validateStatus || str(r.body, "code") != a.validateCode {
				t.Errorf("%s: validate %s: %d %s, want %d %s", a.key, body, r.status, r.raw, a.validateStatus, a.validateCode)
				continue
			}
			if r.status != 200 {
				checkFailure(t, r, a.validateStatus, a.validateCode)
			}
			if got := r.body["expires_at"] != nil; got != a.expiry {
				t.Errorf("%s: expires_at %v", a.key, r.body["expires_at"])
			}
			if got := r.header.Get("Retry-After") != ""; got != a.retryAfter {
				t.Errorf("%s: validate Retry-After %q", a.key, r.header.Get("Retry-After"))
			}
			if got := r.body["rotation"] != nil; got != a.rotation {
				t.Errorf("%s: rotation %v", a.key, r.body["rotation"])
			}
		}
		u := e.doJSON("POST", "/v1/usage", `{"units":7}`, "X-API-Key", a.key)
		if a.usageStatus == 200 {
			if u.status != 200 || u.body["charged"] != 7.0 || u.body["credits"] != 1000.0 {
				t.Errorf("%s: usage %d %s, want 200 charging 7 of 1000 (which stay 1000)", a.key, u.status, u.raw)
			}
		} else {
			checkError(t, u, a.usageStatus, a.usageCode)
		}
		if got := u.header.Get("Retry-After") != ""; got != a.retryAfter {
			t.Errorf("%s: usage Retry-After %q", a.key, u.header.Get("Retry-After"))
		}
	}

	// The rotation notice is relative to the request.
	r := e.validateJSON("testROTATION00000000")
	now := e.clock.Now()
	if got, want := str(r.body, "rotation", "replaced_at"), now.Add(-time.Hour).Format(time.RFC3339); got != want {
		t.Errorf("test rotation replaced_at %s, want %s", got, want)
	}
	if got, want := str(r.body, "rotation", "grace_ends_at"), now.Add(24*time.Hour).Format(time.RFC3339); got != want {
		t.Errorf("test rotation grace_ends_at %s, want %s", got, want)
	}
	// Bad requests stay bad requests.
	checkFailure(t, e.doJSON("POST", "/v1/validate", `{"key":"testVALID00000000000","site":1}`), 400, "INVALID_REQUEST")
	checkError(t, e.doJSON("POST", "/v1/usage", `{"units":0}`, "X-API-Key", "testVALID00000000000"), 400, "INVALID_REQUEST")

	// Nothing was written: no activity, no event, no charge.
	if err := e.db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw := openSQL(t, e.dsn)
	for _, table := range []string{"key_sites", "key_usage_daily", "key_last_used", "events", "usage_idempotency"} {
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows after test keys were used", table, n)
		}
	}
}

// TestTestKeysDocumented: the README's table lists every test key with
// the answer it gives.
func TestTestKeysDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range testKeyAnswers {
		var row string
		for _, line := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(line, "| `"+a.key+"`") {
				row = line
			}
		}
		code := a.usageCode
		if a.validateCode != "VALID" {
			code = a.validateCode
		}
		if row == "" || (code != "" && !strings.Contains(row, "`"+code+"`")) {
			t.Errorf("README: no table row for %s answering %s (row %q)", a.key, code, row)
		}
	}
}
