package pluginapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"keyd/store"
)

// validBody is validate's 200 answer as encoding/json would write it: the
// reference appendValidBody is checked against.
type validBody struct {
	Valid bool   `json:"valid"`
	Code  string `json:"code"`
	Key   struct {
		ID        string     `json:"id"`
		Type      string     `json:"type"`
		Name      string     `json:"name"`
		Hint      string     `json:"hint"`
		ExpiresAt *time.Time `json:"expires_at"`
		Scopes    []string   `json:"scopes"`
	} `json:"key"`
	Account struct {
		ID      string `json:"id"`
		Plan    string `json:"plan"`
		Status  string `json:"status"`
		Credits int64  `json:"credits"`
	} `json:"account"`
	Rotation   *rotationBody    `json:"rotation,omitempty"`
	SpendLimit *store.Allowance `json:"spend_limit,omitempty"`
	Sites      *store.SiteSlots `json:"sites,omitempty"`
}

type rotationBody struct {
	ReplacedAt  time.Time `json:"replaced_at"`
	GraceEndsAt time.Time `json:"grace_ends_at"`
}

func validBodyOf(v *store.KeyView) validBody {
	var b validBody
	if a, ok := v.Allowance(encodeTestNow); ok {
		b.SpendLimit = &a
	}
	if v.MaxSites > 0 {
		b.Sites = &store.SiteSlots{Used: v.SitesUsed, Limit: v.MaxSites}
	}
	b.Valid, b.Code = true, codeValid
	b.Key.ID, b.Key.Type, b.Key.Name, b.Key.Hint, b.Key.ExpiresAt, b.Key.Scopes = v.KeyID, v.Type, v.Name, v.Hint, unixPtr(v.ExpiresAt), v.Scopes
	b.Account.ID, b.Account.Plan, b.Account.Status, b.Account.Credits = v.AccountID, v.Plan, v.AccountStatus, v.Credits
	if v.ValidUntil != 0 {
		b.Rotation = &rotationBody{ReplacedAt: time.Unix(v.ReplacedAt, 0).UTC(), GraceEndsAt: time.Unix(v.ValidUntil, 0).UTC()}
	}
	return b
}

// encodeTestNow is the time the encoding tests answer at.
var encodeTestNow = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestValidBodyEncoding(t *testing.T) {
	names := []string{"Primary key", "Café Müller", `quote " and \ backslash`, "<script>&amp;", "tab\tnew\nline\r\x01\x1f",
		"line\u2028sep\u2029", "bad \xff utf8", "", "emoji 🙂", strings.Repeat("x", 50)}
	for i, name := range names {
		v := store.KeyView{KeyID: "key_0123456789abcdef", Type: store.KeyTypeAlias, Name: name, Hint: "QrSt",
			Scopes: []string{"*", "!billing", "api:read"}, AccountID: "acc_0123456789abcdef",
			AccountStatus: store.AccountActive, Plan: "pro", Credits: int64(i) * 1_000_000_007}
		if i%2 == 1 {
			v.ExpiresAt = time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC).Unix() + int64(i)
		}
		if i == 3 {
			v.Scopes = []string{}
		}
		if i%3 == 2 { // a primary key in the grace of a reset
			v.Type = store.KeyTypePrimary
			v.ReplacedAt = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).Unix() + int64(i)
			v.ValidUntil = v.ReplacedAt + 86400
		}
		if i%3 == 1 {
			v.SpendLimit = store.SpendLimit{Limit: int64(i) * 100, Period: []string{store.PeriodDay, store.PeriodMonth, store.PeriodTotal}[(i/3)%3]}
		}
		if i%4 == 2 {
			v.MaxSites, v.SitesUsed = i, i/2
		}
		got := appendValidBody(nil, &v, encodeTestNow)
		want, err := json.Marshal(validBodyOf(&v))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			// Both must at least mean the same.
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("name %q: hand-written body is not JSON: %v\n%s", name, err, got)
			}
			json.Unmarshal(want, &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("name %q:\n got %s\nwant %s", name, got, want)
			}
		}
	}
}

// TestInvalidBodyEncoding checks the hand-written failure answer against
// encoding/json, with and without expires_at.
func TestInvalidBodyEncoding(t *testing.T) {
	type invalidBody struct {
		Valid     bool       `json:"valid"`
		Code      string     `json:"code"`
		Message   string     `json:"message"`
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
	}
	expiry := time.Date(2026, 12, 1, 10, 30, 5, 0, time.UTC)
	messages := []string{`this key may not be used for "<billing>"`, "line\nbreak \u2028 and \xff", "", "café & co"}
	for i, msg := range messages {
		ae := newError(http.StatusUnauthorized, codeExpired, "%s", msg)
		var expiresAt *time.Time
		if i%2 == 0 {
			expiresAt = &expiry
		}
		got := appendInvalidBody(nil, ae, expiresAt)
		want, err := json.Marshal(invalidBody{Code: ae.Code, Message: ae.Message, ExpiresAt: expiresAt})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("message %q:\n got %s\nwant %s", msg, got, want)
		}
	}
}

// TestPlainValidImpliesValid checks that the fast pre-check never lets through
// a request the validator would refuse.
func TestPlainValidImpliesValid(t *testing.T) {
	s := &server{validate: newValidator()}
	key := "AbCdEfGhIjKlMnOpQrSt"
	cases := []validateRequest{
		{Key: key},
		{Key: key, Site: "https://example.com/", Plugin: "p", PluginVersion: "1", WPVersion: "6.1", Scope: "optimize"},
		{Key: key, Site: strings.Repeat("s", 2048), Plugin: strings.Repeat("p", 100), PluginVersion: strings.Repeat("v", 50),
			WPVersion: strings.Repeat("w", 50), Scope: strings.Repeat("c", 64)},
		{Key: key, Site: strings.Repeat("s", 2049)},
		{Key: key, Plugin: "é"},
		{Key: key, Scope: "a\x00b"},
		{Key: "short"},
		{Key: strings.Repeat("k", 200)},
		{},
	}
	for _, r := range cases {
		if plainValid(&r) && s.validate.Struct(&r) != nil {
			t.Errorf("plainValid accepted %+v, the validator refuses it: %v", r, s.validate.Struct(&r))
		}
	}
}

func FuzzPlainValidImpliesValid(f *testing.F) {
	s := &server{validate: newValidator()}
	f.Add("AbCdEfGhIjKlMnOpQrSt", "https://example.com", "plugin", "1.0", "6.1", "scope")
	f.Add("AbCdEfGhIjKlMnOpQrS\x00", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, key, site, plugin, pv, wv, scope string) {
		r := validateRequest{Key: key, Site: site, Plugin: plugin, PluginVersion: pv, WPVersion: wv, Scope: scope}
		if plainValid(&r) && s.validate.Struct(&r) != nil {
			t.Fatalf("plainValid accepted %+v, the validator refuses it", r)
		}
	})
}

// FuzzValidateFormAgreesWithParseQuery checks the hand-written form reader
// against net/url on every body net/url accepts.
func FuzzValidateFormAgreesWithParseQuery(f *testing.F) {
	for _, seed := range []string{
		"key=AbCdEfGhIjKlMnOpQrSt&site=https%3A%2F%2Fshop.example%2F&plugin=p+q",
		"key=a&key=b", "k%65y=x", "site=%zz", "=&&=&x", "scope=a%2Cb&extra=1", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		want, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		r, _ := http.NewRequest("POST", "/v1/validate", strings.NewReader(body))
		var got validateRequest
		gotErr := readValidateForm(r, &got)
		dup := false
		for i, name := range validateFormFields {
			vals := want[name]
			if len(vals) > 1 {
				dup = true
				continue
			}
			if len(vals) == 1 && gotErr == nil && *got.field(i) != vals[0] {
				t.Fatalf("body %q: %s = %q, net/url says %q", body, name, *got.field(i), vals[0])
			}
		}
		if dup != (gotErr != nil) {
			t.Fatalf("body %q: error %v, but a field appears more than once: %v", body, gotErr, dup)
		}
	})
}
