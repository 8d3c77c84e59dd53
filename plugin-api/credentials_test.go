package pluginapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"keyd/store"
)

// credentialCase is one way of putting keys into a request: the headers (name,
// value pairs, a name may repeat) and validate's body key, if any.
type credentialCase struct {
	name    string
	headers []string
	bodyKey string
}

// TestTwoDifferentKeysRefusedEverywhere checks that a request carrying two
// keys that differ is refused with 400 INVALID_REQUEST on every kind of
// route, whichever places carry them, and changes nothing; the same key in
// several places is accepted.
func TestTwoDifferentKeysRefusedEverywhere(t *testing.T) {
	a := newOwnerAPI(t)
	_, primary := a.accountWith("pro", 100)
	_, alias := a.alias(primary, map[string]any{"name": "client"})
	other := store.NewKey() // well formed, stored nowhere

	disagree := []credentialCase{
		{"X-API-Key and Bearer", []string{"X-API-Key", primary, "Authorization", "Bearer " + alias}, ""},
		{"Bearer and X-API-Key", []string{"Authorization", "Bearer " + alias, "X-API-Key", primary}, ""},
		{"X-API-Key twice", []string{"X-API-Key", primary, "X-API-Key", alias}, ""},
		{"Bearer twice", []string{"Authorization", "Bearer " + primary, "Authorization", "Bearer " + alias}, ""},
		{"unknown key beside a good one", []string{"X-API-Key", primary, "Authorization", "Bearer " + other}, ""},
		{"malformed key beside a good one", []string{"X-API-Key", primary, "Authorization", "Bearer short"}, ""},
	}
	bodyDisagree := []credentialCase{
		{"body and X-API-Key", []string{"X-API-Key", alias}, primary},
		{"body and Bearer", []string{"Authorization", "Bearer " + alias}, primary},
		{"body, X-API-Key and Bearer", []string{"X-API-Key", primary, "Authorization", "Bearer " + alias}, primary},
	}
	agree := []credentialCase{
		{"X-API-Key and Bearer", []string{"X-API-Key", primary, "Authorization", "Bearer " + primary}, ""},
		{"X-API-Key twice", []string{"X-API-Key", primary, "X-API-Key", primary}, ""},
		{"Bearer alone", []string{"Authorization", "Bearer " + primary}, ""},
	}
	bodyAgree := []credentialCase{
		{"body and X-API-Key", []string{"X-API-Key", primary}, primary},
		{"body and Bearer", []string{"Authorization", "bearer " + primary}, primary},
		{"body, X-API-Key and Bearer", []string{"X-API-Key", primary, "Authorization", "Bearer " + primary}, primary},
	}

	type route struct {
		name string
		send func(c credentialCase) *httptest.ResponseRecorder
		ok   int
	}
	send := func(method, path, contentType, body string, headers []string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Add(headers[i], headers[i+1])
		}
		w := httptest.NewRecorder()
		a.handler.ServeHTTP(w, r)
		return w
	}
	routes := []route{
		{"validate JSON", func(c credentialCase) *httptest.ResponseRecorder {
			body := map[string]string{}
			if c.bodyKey != "" {
				body["key"] = c.bodyKey
			}
			b, _ := json.Marshal(body)
			return send("POST", "/v1/validate", "application/json", string(b), c.headers)
		}, http.StatusOK},
		{"validate form", func(c credentialCase) *httptest.ResponseRecorder {
			form := url.Values{"site": {"https://client.example/"}}
			if c.bodyKey != "" {
				form.Set("key", c.bodyKey)
			}
			return send("POST", "/v1/validate", "application/x-www-form-urlencoded", form.Encode(), c.headers)
		}, http.StatusOK},
		{"usage", func(c credentialCase) *httptest.ResponseRecorder {
			return send("POST", "/v1/usage", "application/json", `{"units":1}`, c.headers)
		}, http.StatusOK},
		{"owner route", func(c credentialCase) *httptest.ResponseRecorder {
			return send("GET", "/v1/account", "", "", c.headers)
		}, http.StatusOK},
		{"owner change", func(c credentialCase) *httptest.ResponseRecorder {
			return send("PATCH", "/v1/account", "application/json", `{"low_credit_threshold":5}`, c.headers)
		}, http.StatusOK},
	}
	credits := func() int64 {
		v, _ := a.db.LookupKey(store.HashKey(primary))
		return v.Credits
	}
	for _, r := range routes {
		validate := strings.HasPrefix(r.name, "validate")
		cases := disagree
		if validate {
			cases = append(append([]credentialCase{}, disagree...), bodyDisagree...)
		}
		for _, c := range cases {
			before := credits()
			w := r.send(c)
			var out map[string]any
			json.Unmarshal(w.Body.Bytes(), &out)
			msg, _ := out["message"].(string)
			if e, ok := out["error"].(map[string]any); ok {
				msg, _ = e["message"].(string)
			}
			if w.Code != http.StatusBadRequest || errorCode(out) != "INVALID_REQUEST" {
				t.Errorf("%s with %s: %d %s, want 400 INVALID_REQUEST", r.name, c.name, w.Code, w.Body.String())
				continue
			}
			if !strings.Contains(msg, "different keys") || !strings.Contains(msg, "header") {
				t.Errorf("%s with %s: message %q does not say where the keys came from", r.name, c.name, msg)
			}
			if c.bodyKey != "" && !strings.Contains(msg, "body") {
				t.Errorf("%s with %s: message %q does not name the body", r.name, c.name, msg)
			}
			if strings.Contains(w.Body.String(), primary) || strings.Contains(w.Body.String(), alias) {
				t.Errorf("%s with %s: the answer repeats a key: %s", r.name, c.name, w.Body.String())
			}
			if after := credits(); after != before {
				t.Errorf("%s with %s: refused, yet credits went from %d to %d", r.name, c.name, before, after)
			}
		}
		cases = agree
		if validate {
			cases = append(append([]credentialCase{}, agree...), bodyAgree...)
		}
		for _, c := range cases {
			if w := r.send(c); w.Code != r.ok {
				t.Errorf("%s with the same key in %s: %d %s, want %d", r.name, c.name, w.Code, w.Body.String(), r.ok)
			}
		}
	}
}
