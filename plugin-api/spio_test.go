package pluginapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pluginapi "keyd/plugin-api"
	"keyd/store"
)

// spioPassword is the site's own HTTP password in the requests below; it
// must never reach keyd's log or database.
const spioPassword = "Site-HTTP-Pa55word-7731"

// spioFields are the fields the ShortPixel Image Optimizer's getRemoteQuota
// sends when it validates a key (its "Save settings & validate"), including
// the site's HTTP credentials, which it sends when the site has them.
func spioFields(key, site string) url.Values {
	host := strings.TrimPrefix(strings.TrimPrefix(site, "https://"), "http://")
	host, _, _ = strings.Cut(host, "/")
	return url.Values{
		"key":         {key},
		"useragent":   {"AgentMozilla%2F5.0"},
		"DomainCheck": {site},
		"Info":        {"6.5.2|8.2.7"},
		"ImagesCount": {"120"},
		"ThumbsCount": {"840"},
		"host":        {host},
		"user":        {"siteadmin"},
		"pass":        {spioPassword},
	}
}

// spioMethods are the two ways the plugin sends the check: a form POST and,
// when POSTs fail, a GET with the same fields in the query string.
var spioMethods = []struct {
	name string
	send func(e *testEnv, path string, fields url.Values) response
}{
	{"post", func(e *testEnv, path string, fields url.Values) response {
		return e.do("POST", path, "application/x-www-form-urlencoded", fields.Encode())
	}},
	{"get", func(e *testEnv, path string, fields url.Values) response {
		return e.do("GET", path+"?"+fields.Encode(), "", "")
	}},
}

// spioStatus is what the plugin reads of an answer.
type spioStatus struct {
	Status struct {
		Code    int
		Message string
		Reason  string
	}
	APICallsMade, APICallsQuota, APICallsMadeOneTime, APICallsQuotaOneTime int64
	DateSubscription                                                       *string
}

func decodeSPIO(t *testing.T, res response) spioStatus {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("status %d, want 200 (the plugin takes anything else for a network failure): %s", res.status, res.raw)
	}
	checkFields(t, "api-status answer", res.body, "Status", "APICallsMade", "APICallsQuota",
		"APICallsMadeOneTime", "APICallsQuotaOneTime", "DateSubscription")
	var out spioStatus
	if err := json.Unmarshal([]byte(res.raw), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// remaining is the plugin's own sum: quota minus made, each floored at 0.
func (s spioStatus) remaining() int64 {
	return max(s.APICallsQuota-s.APICallsMade, 0) + max(s.APICallsQuotaOneTime-s.APICallsMadeOneTime, 0)
}

func TestSPIOStatusAnswersLikeValidate(t *testing.T) {
	f := newValidateFixture(t)
	tests := []struct {
		name string
		key  string
		code int
	}{
		{"primary", f.account.Secret, 2},
		{"alias", f.alias, 2},
		{"malformed", "abc", -401},
		{"unknown key", store.NewKey(), -401},
		{"primary reset away", f.revoked, -401},
		{"deleted alias", f.deleted, -401},
		{"alias past expires_at", f.expired, -401},
		{"deactivated alias", f.inactive, -401},
		{"suspended account", f.suspended, -401},
		{"no key", "", -400},
	}
	for _, path := range []string{"/v2/api-status.php", "/v2/api-status"} {
		for _, m := range spioMethods {
			for _, tt := range tests {
				t.Run(path+"/"+m.name+"/"+tt.name, func(t *testing.T) {
					got := decodeSPIO(t, m.send(f.testEnv, path, spioFields(tt.key, "https://shop.example.com")))
					want := f.validateJSON(tt.key)
					if got.Status.Code != tt.code {
						t.Errorf("Status.Code = %d, want %d (%+v)", got.Status.Code, tt.code, got.Status)
					}
					// The same decision and the same words as /v1/validate.
					if wantCode := str(want.body, "code"); got.Status.Reason != wantCode {
						t.Errorf("Status.Reason = %q, validate says %q", got.Status.Reason, wantCode)
					}
					if msg := str(want.body, "message"); msg != "" && got.Status.Message != msg {
						t.Errorf("Status.Message = %q, validate says %q", got.Status.Message, msg)
					}
					if strings.ContainsAny(got.Status.Message, "<>&") {
						t.Errorf("message %q would be read as HTML in the plugin's notice", got.Status.Message)
					}
					if tt.code == 2 {
						if got.remaining() != 1200 || got.APICallsQuotaOneTime != 1200 {
							t.Errorf("credits: %+v, want 1200 one-time credits", got)
						}
					} else if got.remaining() != 0 {
						t.Errorf("a refusal reports credits: %+v", got)
					}
				})
			}
		}
	}
}

func TestSPIOStatusSitesAndRecording(t *testing.T) {
	e := newEnv(t, testToken)
	acc, key := e.createAccount("Agency", "pro", 500)
	res := e.doJSON("POST", "/v1/aliases", `{"name":"Client","allowed_sites":["client.example"]}`, "X-API-Key", key)
	if res.status != http.StatusCreated {
		t.Fatalf("create alias: %d %s", res.status, res.raw)
	}
	alias, aliasID := str(res.body, "key"), str(res.body, "alias", "id")

	send := func(fields url.Values) spioStatus {
		t.Helper()
		return decodeSPIO(t, e.do("POST", "/v2/api-status.php", "application/x-www-form-urlencoded", fields.Encode()))
	}
	if got := send(spioFields(alias, "https://client.example")); got.Status.Code != 2 {
		t.Errorf("bound alias from its own site: %+v", got.Status)
	}
	if got := send(spioFields(alias, "https://other.example")); got.Status.Code != -401 || got.Status.Reason != "SITE_NOT_ALLOWED" {
		t.Errorf("bound alias from another site: %+v", got.Status)
	}
	// A development copy of the site passes every binding, as on validate.
	if got := send(spioFields(alias, "http://client.local")); got.Status.Code != 2 {
		t.Errorf("bound alias from a development host: %+v", got.Status)
	}
	// Without DomainCheck (the plugin's quota checks) the site is host.
	fields := spioFields(alias, "https://client.example")
	fields.Del("DomainCheck")
	if got := send(fields); got.Status.Code != 2 {
		t.Errorf("bound alias with host only: %+v", got.Status)
	}
	fields.Set("host", "other.example")
	if got := send(fields); got.Status.Reason != "SITE_NOT_ALLOWED" {
		t.Errorf("bound alias with another host only: %+v", got.Status)
	}

	// The check is recorded like a validation: last use, site, WordPress version.
	if err := e.db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	sites, err := e.db.ListKeySites(context.Background(), acc, aliasID)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range sites {
		found = found || strings.Contains(s.Site, "client.example") && s.WPVersion == "6.5.2"
	}
	if !found {
		t.Errorf("sites recorded for the alias: %+v, want client.example with WordPress 6.5.2", sites)
	}
	keys := e.doJSON("GET", "/v1/keys", "", "X-API-Key", key)
	for _, k := range dig(keys.body, "keys").([]any) {
		k := k.(map[string]any)
		if k["id"] == aliasID && k["last_used_at"] == nil {
			t.Errorf("the alias has no last use after its checks: %v", k)
		}
	}
	usage := e.doJSON("GET", "/v1/usage?key_id="+aliasID, "", "X-API-Key", key)
	if !strings.Contains(usage.raw, `"validations":5`) || !strings.Contains(usage.raw, `"failed_validations":2`) {
		t.Errorf("the alias's counters after 5 checks, 2 of them refused: %s", usage.raw)
	}
}

func TestSPIOStatusSpendsTheRateLimit(t *testing.T) {
	e := newEnv(t, testToken)
	_, key := e.createAccount("Free", "free", 0) // free: 60 a minute
	for i := 0; i < 60; i++ {
		if got := decodeSPIO(t, e.do("GET", "/v2/api-status.php?"+spioFields(key, "https://a.example").Encode(), "", "")); got.Status.Code != 2 {
			t.Fatalf("check %d: %+v", i+1, got.Status)
		}
	}
	got := decodeSPIO(t, e.do("GET", "/v2/api-status.php?"+spioFields(key, "https://a.example").Encode(), "", ""))
	if got.Status.Code != -429 || got.Status.Reason != "RATE_LIMITED" {
		t.Errorf("check 61: %+v, want -429 RATE_LIMITED", got.Status)
	}
	// The same minute's limit is shared with /v1/validate.
	checkFailure(t, e.validateJSON(key), http.StatusTooManyRequests, "RATE_LIMITED")
	e.clock.Add(time.Minute)
	if got := decodeSPIO(t, e.do("GET", "/v2/api-status.php?"+spioFields(key, "https://a.example").Encode(), "", "")); got.Status.Code != 2 {
		t.Errorf("a minute later: %+v", got.Status)
	}
}

// The site's HTTP password is in every request above; it is not kept
// anywhere: not in the log, the database or its WAL.
func TestSPIOStatusKeepsNoSitePassword(t *testing.T) {
	// It reads SQLite's files, so it runs on SQLite whichever engine the
	// tests are built for.
	path := filepath.Join(t.TempDir(), "keyd.db")
	e := newEnvAt(t, testToken, path)
	_, key := e.createAccount("Acme", "pro", 10)
	for _, m := range spioMethods {
		decodeSPIO(t, m.send(e, "/v2/api-status.php", spioFields(key, "https://acme.example")))
		decodeSPIO(t, m.send(e, "/v2/api-status.php", spioFields(store.NewKey(), "https://acme.example")))
	}
	if err := e.db.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.log.String(), spioPassword) {
		t.Error("the log holds the site's password")
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) < 2 {
		t.Fatalf("database files: %v", files)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(spioPassword)) || bytes.Contains(b, []byte("siteadmin")) {
			t.Errorf("%s holds the site's HTTP credentials", filepath.Base(name))
		}
	}
}

func TestSPIOStatusCanBeSwitchedOff(t *testing.T) {
	e := newEnv(t, testToken)
	h, err := pluginapi.New(e.db, pluginapi.Config{Now: e.clock.Now, DisableCompatSPIO: true})
	if err != nil {
		t.Fatal(err)
	}
	off := &testEnv{tb: t, db: e.db, h: h, clock: e.clock}
	checkError(t, off.do("POST", "/v2/api-status.php", "application/x-www-form-urlencoded", "key=x"), http.StatusNotFound, "NOT_FOUND")
}

var updateSPIOFixture = flag.Bool("update-spio", false, "rewrite the WordPress stub's api-status fixture")

// spioFixturePath holds keyd's answers to the plugin's check, for the
// stub's PHP tests: they decode them as the plugin does (json_decode).
var spioFixturePath = filepath.Join("..", "wp-plugin-stub", "tests", "fixtures", "spio-status.json")

func TestSPIOStatusFixture(t *testing.T) {
	e := newEnv(t, testToken)
	_, key := e.createAccount("Acme", "pro", 1500)
	res := e.doJSON("POST", "/v1/aliases", `{"name":"Paused"}`, "X-API-Key", key)
	alias, aliasID := str(res.body, "key"), str(res.body, "alias", "id")
	e.doJSON("POST", "/v1/aliases/"+aliasID+"/deactivate", "", "X-API-Key", key)
	fixture := map[string]string{
		"valid":    e.do("POST", "/v2/api-status.php", "application/x-www-form-urlencoded", spioFields(key, "https://acme.example").Encode()).raw,
		"inactive": e.do("POST", "/v2/api-status.php", "application/x-www-form-urlencoded", spioFields(alias, "https://acme.example").Encode()).raw,
	}
	out, err := json.MarshalIndent(fixture, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	if *updateSPIOFixture {
		if err := os.WriteFile(spioFixturePath, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := os.ReadFile(spioFixturePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, out) {
		t.Errorf("%s is not what keyd answers now; run go test ./plugin-api -run TestSPIOStatusFixture -update-spio\nwant:\n%s", spioFixturePath, out)
	}
}

// Whatever the request holds, the plugin gets a 200 with the protocol's
// body and a refusal, never a 500 or a valid answer.
func TestSPIOStatusBadRequests(t *testing.T) {
	e := newEnv(t, testToken)
	_, key := e.createAccount("Acme", "pro", 10)
	long := strings.Repeat("a", 5000)
	for name, body := range map[string]string{
		"no fields":             "",
		"a bad escape":          "key=%zz",
		"a NUL in the key":      "key=" + key[:19] + "%00",
		"invalid UTF-8 in Info": "key=" + key + "&Info=%FF%FE",
		"a NUL in DomainCheck":  "key=" + key + "&DomainCheck=https%3A%2F%2Fa.example%00",
		"a DomainCheck of 5000": "key=" + key + "&DomainCheck=" + long,
		"a key of 5000":         "key=" + long,
		"only a password":       "pass=" + spioPassword,
	} {
		t.Run(name, func(t *testing.T) {
			for _, m := range []string{"POST", "GET"} {
				var res response
				if m == "POST" {
					res = e.do("POST", "/v2/api-status.php", "application/x-www-form-urlencoded", body)
				} else {
					res = e.do("GET", "/v2/api-status.php?"+body, "", "")
				}
				got := decodeSPIO(t, res)
				if got.Status.Code == 2 || got.Status.Message == "" {
					t.Errorf("%s: %+v", m, got.Status)
				}
			}
		})
	}
}
