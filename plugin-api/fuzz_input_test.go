package pluginapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"keyd/store"
)

// Fuzz targets for the API's own parsers: durations (ttl, grace_period) and
// the alias bodies, the latter through the real router. Their seeds run
// under plain go test.

// FuzzDurationFieldsAgree sends the same JSON value as an alias's ttl and
// as a reset's grace_period through their request parsing. The two fields
// speak one grammar (store.ParseDuration): both refuse a value outside it
// with the same message, or both read it as the same duration, which each
// then takes exactly when it is within its own bounds. A refusal is always
// a 400 naming its field.
func FuzzDurationFieldsAgree(f *testing.F) {
	for _, s := range []string{`"36h"`, `"90m"`, `"7d"`, `"1.5h"`, `"1.5d"`, `"0s"`, `"59s"`, `"1m"`, `"168h"`, `"169h"`, `"3650d"`,
		`"3651d"`, `"10000d"`, `"9223372036854775807ns"`, `"1h30m"`, `"24"`, `"0"`, `3600`, `0`, `1.5`, `null`, `true`, `[]`, `{}`,
		`""`, `"-1h"`, `" 7d"`, `"7D"`, `"1e3s"`, `"\u0000"`} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	named := func(t *testing.T, err error, field string) string {
		if ae := toAPIError(err); ae.Status != http.StatusBadRequest || ae.Code != codeInvalidRequest || ae.Fields[field] == "" {
			t.Fatalf("error %#v is not a 400 naming %s", err, field)
		}
		return toAPIError(err).Fields[field]
	}
	f.Fuzz(func(t *testing.T, value string) {
		if !json.Valid([]byte(value)) || !utf8.ValidString(value) {
			return // both bodies would be refused before any field is read
		}
		var alias createAliasRequest
		if err := decodeStrict([]byte(`{"name":"x","ttl":`+value+`}`), &alias); err != nil {
			t.Fatalf("ttl %s: the body does not decode: %v", value, err)
		}
		var reset resetKeyRequest
		if err := decodeStrict([]byte(`{"grace_period":`+value+`}`), &reset); err != nil {
			t.Fatalf("grace_period %s: the body does not decode: %v", value, err)
		}
		at, given, ttlErr := alias.expiry(now)
		grace, graceErr := parseGrace(reset.GracePeriod)
		if value == "null" {
			if ttlErr != nil || given || graceErr != nil || grace != 0 {
				t.Fatalf("null: ttl %v %v %v, grace %v %v; want both absent", at, given, ttlErr, grace, graceErr)
			}
			return
		}
		var text string
		inGrammar := json.Unmarshal([]byte(value), &text) == nil
		d, parseErr := store.ParseDuration(text)
		inGrammar = inGrammar && parseErr == nil
		if !inGrammar {
			if ttlErr == nil || graceErr == nil {
				t.Fatalf("%s is outside the grammar but ttl gives %v, %v and grace_period %v, %v", value, at, ttlErr, grace, graceErr)
			}
			if m1, m2 := named(t, ttlErr, "ttl"), named(t, graceErr, "grace_period"); m1 != store.DurationSyntax || m2 != m1 {
				t.Fatalf("%s: ttl says %q and grace_period %q; want both %q", value, m1, m2, store.DurationSyntax)
			}
			return
		}
		inTTL := d >= store.AliasLifetime.Min && d <= store.AliasLifetime.Max
		if (ttlErr == nil) != inTTL {
			t.Fatalf("ttl %s (%v): error %v, want accepted %v", value, d, ttlErr, inTTL)
		}
		if ttlErr != nil {
			named(t, ttlErr, "ttl")
		} else if !given || !at.Equal(now.Add(d).Truncate(time.Second)) {
			t.Fatalf("ttl %s gives expiry %v, want now + %v", value, at, d)
		}
		inGrace := d >= store.GracePeriod.Min && d <= store.GracePeriod.Max
		if (graceErr == nil) != inGrace {
			t.Fatalf("grace_period %s (%v): error %v, want accepted %v", value, d, graceErr, inGrace)
		}
		if graceErr != nil {
			named(t, graceErr, "grace_period")
		} else if grace != d {
			t.Fatalf("grace_period %s = %v, ttl reads %v", value, grace, d)
		}
	})
}

// fuzzAPI is the router over a store with one account for the fuzz targets
// that go through HTTP. Each iteration points tb at its own *testing.T.
type fuzzAPI struct {
	*relEnv
	accountID string
	key       string // current primary key
	aliasID   string // an alias PATCH bodies go to
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	e := newRelEnv(f, "")
	c, err := e.db.CreateAccount(context.Background(), store.SystemActor, store.NewAccount{Name: "Fuzz", Email: "fuzz@example.com", Plan: "mega", Credits: 100})
	if err != nil {
		f.Fatal(err)
	}
	a := &fuzzAPI{relEnv: e, accountID: c.Account.ID, key: c.Secret}
	al, err := e.db.CreateAlias(context.Background(), store.SystemActor, a.accountID, store.NewAlias{Name: "Patched"})
	if err != nil {
		f.Fatal(err)
	}
	a.aliasID = al.Key.ID
	return a
}

// use makes t the test that failures go to, until the iteration ends.
func (a *fuzzAPI) use(t *testing.T, f *testing.F) {
	a.tb = t
	t.Cleanup(func() { a.tb = f })
}

// fuzzCheckError checks the owner error shape and that the code is one of codes.
func fuzzCheckError(t *testing.T, got relAnswer, codes map[int]string) {
	t.Helper()
	want, ok := codes[got.status]
	if !ok {
		t.Fatalf("status %d is not one this route may answer: %s", got.status, got)
	}
	e, _ := got.body["error"].(map[string]any)
	if e == nil || e["code"] != want || e["message"] == "" {
		t.Fatalf("status %d without the error shape and code %s: %s", got.status, want, got)
	}
}

// FuzzAliasBodies sends arbitrary bodies to POST /v1/aliases and PATCH
// /v1/aliases/{id} through the real router. The answer is one the contract
// allows, never a 500; a refused body changes nothing in the database; an
// accepted one gives back what was asked: the name, scopes within the
// primary's, site patterns in their normal form, a future expiry, and a key
// that validates.
func FuzzAliasBodies(f *testing.F) {
	a := newFuzzAPI(f)
	for _, s := range []string{
		`{"name":"Client site"}`,
		`{"name":"Client site","ttl":"7d","scopes":["optimize","!convert"],"allowed_sites":["client.example","*.shop.example"]}`,
		`{"name":"Temp","expires_at":"2030-01-01T00:00:00Z"}`,
		`{"name":"Temp","expires_at":"2020-01-01T00:00:00Z"}`,
		`{"name":"Both","expires_at":"2030-01-01T00:00:00Z","ttl":"1h"}`,
		`{"name":"Short","ttl":"30s"}`,
		`{"name":"Neg","ttl":"-1h"}`,
		`{"name":"Huge","ttl":"2562047h"}`,
		`{"name":"Far","expires_at":"9999-12-31T23:59:59Z"}`,
		`{"name":"Zone","expires_at":"2030-01-01T00:00:00+14:00"}`,
		`{"name":"Café Müller"}`,
		`{"name":" lead"}`,
		`{"name":""}`,
		`{"name":"a\u0000b"}`,
		`{"name":"Patched"}`,
		`{"name":"x","scopes":["*","*"]}`,
		`{"name":"x","scopes":["a,b"]}`,
		`{"name":"x","scopes":[]}`,
		`{"name":"x","allowed_sites":["*.com"]}`,
		`{"name":"x","allowed_sites":["[::1]"]}`,
		`{"name":"x","allowed_sites":["Client.Example."]}`,
		`{"scopes":null}`,
		`{"expires_at":null}`,
		`{"allowed_sites":[]}`,
		`{"name":"x","name":"y"}`,
		`{"name":"x","extra":1}`,
		`[]`, `null`, ``, `{`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, patch bool) {
		a.use(t, f)
		req := relRequest{method: "POST", target: "/v1/aliases", contentType: "application/json", body: body,
			headers: []string{"X-API-Key", a.key}}
		if patch {
			req.method, req.target = "PATCH", "/v1/aliases/"+a.aliasID
		}
		before := a.snapshot()
		got := a.send(req)
		if got.status < 300 {
			a.checkAcceptedAlias(t, body, patch, got)
			return
		}
		fuzzCheckError(t, got, map[int]string{400: codeInvalidRequest, 403: codeScopeExceeds, 409: codeNameTaken,
			413: codeInvalidRequest, 415: codeInvalidRequest})
		if got.status == http.StatusForbidden && strings.Contains(got.raw, codeAliasLimit) {
			t.Fatalf("alias limit reached: the fuzz target should free its slots: %s", got)
		}
		if d := relDiff(before, a.snapshot(), nil); d != "" {
			t.Fatalf("refused body %q (%s) changed the database:\n%s", body, got, d)
		}
	})
}

// checkAcceptedAlias checks an alias the API accepted, then deletes a new
// one so that the plan's limit is never reached.
func (a *fuzzAPI) checkAcceptedAlias(t *testing.T, body []byte, patch bool, got relAnswer) {
	t.Helper()
	want := http.StatusCreated
	alias, _ := got.body["alias"].(map[string]any)
	if patch {
		want, alias = http.StatusOK, got.body
	}
	if got.status != want || alias == nil {
		t.Fatalf("accepted with %s", got)
	}
	var sent struct {
		Name *string `json:"name"`
	}
	json.Unmarshal(body, &sent)
	if sent.Name != nil && alias["name"] != *sent.Name {
		t.Fatalf("asked for name %q, got %v", *sent.Name, alias["name"])
	}
	if !store.ValidAliasName(alias["name"].(string)) {
		t.Fatalf("accepted a bad name: %s", got)
	}
	var sites, scopes []string
	for _, s := range alias["allowed_sites"].([]any) {
		sites = append(sites, s.(string))
	}
	for _, s := range alias["scopes"].([]any) {
		scopes = append(scopes, s.(string))
	}
	if again, err := store.CheckSitePatterns(sites); err != nil || !slices.Equal(again, sites) {
		t.Fatalf("allowed_sites %q are not in normal form: %q %v", sites, again, err)
	}
	if _, err := (store.Catalogue{}).CheckRules(scopes); err != nil {
		t.Fatalf("scopes %q are not rules: %v", scopes, err)
	}
	if exp, ok := alias["expires_at"].(string); ok {
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil || !at.After(a.clock()) || at.Sub(a.clock()) > store.AliasLifetime.Max {
			t.Fatalf("expires_at %q is not a time in the future within %s", exp, store.AliasLifetime.Range)
		}
		// A new expiry is at least a minute ahead (less the rounding to the second).
		if !patch && at.Sub(a.clock()) < store.AliasLifetime.Min-time.Second {
			t.Fatalf("expires_at %q is less than a minute ahead", exp)
		}
	}
	if patch {
		return
	}
	key, _ := got.body["key"].(string)
	if !store.WellFormedKey(key) {
		t.Fatalf("created alias without a well-formed key: %s", got)
	}
	site := "https://anything.example/"
	if len(sites) > 0 {
		site = "https://" + strings.Trim(strings.TrimPrefix(sites[0], "*."), "[]") + "/"
		if strings.Contains(sites[0], ":") {
			site = "https://[" + sites[0] + "]/"
		}
		if strings.HasPrefix(sites[0], "*.") {
			site = "https://www." + strings.TrimPrefix(sites[0], "*.") + "/"
		}
	}
	v := a.send(relRequest{method: "POST", target: "/v1/validate", contentType: "application/json",
		body: []byte(`{"key":"` + key + `","site":` + strconv.Quote(site) + `}`)})
	if v.status != http.StatusOK && v.code() != codeRateLimited {
		t.Fatalf("the new alias does not validate from %s: %s", site, v)
	}
	if err := a.db.DeleteAlias(context.Background(), store.SystemActor, a.accountID, alias["id"].(string)); err != nil {
		t.Fatal(err)
	}
}

// FuzzGracePeriod sends arbitrary grace periods to POST
// /v1/account/reset-key. A grace from 0 to 168 hours (a duration string)
// resets the key with the old one valid exactly that long; anything else is
// a 400 naming grace_period and changes nothing.
func FuzzGracePeriod(f *testing.F) {
	a := newFuzzAPI(f)
	for _, s := range []string{`"24h"`, `"0"`, `0`, `"168h"`, `"169h"`, `"7d"`, `"8d"`, `604800`, `604801`, `-1`, `"-1h"`, `1.5`, `1e3`,
		`null`, `true`, `[]`, `{}`, `"1h\u0000"`, `"` + strings.Repeat("1", 40) + `"`, `9223372036854775807`, `"9223372036854775807ns"`, `""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, grace string) {
		a.use(t, f)
		body := []byte(`{"grace_period":` + grace + `}`)
		before := a.snapshot()
		got := a.send(relRequest{method: "POST", target: "/v1/account/reset-key", contentType: "application/json", body: body,
			headers: []string{"X-API-Key", a.key}})
		if got.status != http.StatusOK {
			fuzzCheckError(t, got, map[int]string{400: codeInvalidRequest})
			if d := relDiff(before, a.snapshot(), nil); d != "" {
				t.Fatalf("refused grace %q changed the database:\n%s", grace, d)
			}
			return
		}
		key, _ := got.body["key"].(string)
		if !store.WellFormedKey(key) {
			t.Fatalf("reset without a new key: %s", got)
		}
		a.key = key
		until, err := time.Parse(time.RFC3339, fuzzStr(got.body, "previous", "valid_until"))
		if err != nil {
			t.Fatalf("no previous.valid_until: %s", got)
		}
		if d := until.Sub(a.clock()); d < 0 || d > store.MaxGracePeriod {
			t.Fatalf("grace %s accepted with the old key valid for %v", grace, d)
		}
	})
}

// fuzzStr digs a string out of decoded JSON; "" when absent.
func fuzzStr(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		obj, _ := cur.(map[string]any)
		cur = obj[p]
	}
	s, _ := cur.(string)
	return s
}
