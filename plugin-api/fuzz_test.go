package pluginapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Keys the fuzz database holds, fixed so that seeds can name them.
const (
	fuzzValidKey    = "FuzzValidKey00000001"
	fuzzInactiveKey = "FuzzInactiveKey00002"
	fuzzExpiredKey  = "FuzzExpiredKey000003"
)

// validateStatuses are the statuses the contract allows POST /v1/validate.
var validateStatuses = map[int]bool{200: true, 400: true, 401: true, 403: true, 413: true, 429: true}

var validateCodes = map[string]bool{
	"VALID": true, "INVALID_REQUEST": true, "MALFORMED": true, "NOT_FOUND": true, "REVOKED": true, "EXPIRED": true,
	"INACTIVE": true, "ACCOUNT_SUSPENDED": true, "SCOPE_DENIED": true, "SITE_NOT_ALLOWED": true, "RATE_LIMITED": true,
}

// FuzzValidateRequest sends arbitrary bodies, as JSON or as a form, with or
// without an X-API-Key header, through the real router. The answer must
// always be one of the contract's, in the contract's shape, and never a 500.
func FuzzValidateRequest(f *testing.F) {
	e := newEnv(f, "")
	c := e.createStoreAccount("Fuzz", "pro", 10)
	expired := t0.Add(-time.Hour)
	insertKeyRow(f, e.dsn, c.Account.ID, "alias", "Valid", "active", fuzzValidKey, nil, `["*"]`)
	insertKeyRow(f, e.dsn, c.Account.ID, "alias", "Inactive", "inactive", fuzzInactiveKey, nil, `["*"]`)
	insertKeyRow(f, e.dsn, c.Account.ID, "alias", "Expired", "active", fuzzExpiredKey, &expired, `["*"]`)
	e.reopen()

	for _, s := range []struct {
		body   string
		form   bool
		header string
	}{
		{`{"key":"` + fuzzValidKey + `"}`, false, ""},
		{`{"key":"` + fuzzValidKey + `","site":"https://example.com","plugin":"p","plugin_version":"1","wp_version":"6.5","scope":"x"}`, false, ""},
		{`key=` + fuzzValidKey + `&site=https%3A%2F%2Fexample.com%2F`, true, ""},
		{``, false, fuzzValidKey},
		{``, true, fuzzValidKey},
		{`{"key":"` + fuzzInactiveKey + `"}`, false, ""},
		{`key=` + fuzzExpiredKey, true, ""},
		{`{"key":"` + fuzzValidKey + `"}`, false, fuzzInactiveKey},
		{`{"key":"short"}`, false, ""},
		{`{"key":"abcdefghijklmnopqrs\u00e9"}`, false, ""},
		{`{"key":"` + strings.Repeat("k", 200) + `"}`, false, ""},
		{`{"key":1}`, false, ""},
		{`{"key":null}`, false, ""},
		{`{"key":"` + fuzzValidKey + `","extra":{}}`, false, ""},
		{`{"key":"` + fuzzValidKey + `","key":"` + fuzzValidKey + `"}`, false, ""},
		{`{"key":"` + fuzzValidKey + `"}garbage`, false, ""},
		{strings.Repeat(`{"a":`, 40), false, ""},
		{"{\"key\":\"\xff\xfe\"}", false, ""},
		{`[]`, false, ""},
		{`""`, false, ""},
		{`0`, false, ""},
		{`key=%zz`, true, ""},
		{`key=a&key=b`, true, ""},
		{`key=` + fuzzValidKey + `&site=%00`, true, ""},
		{`;;;&&&===`, true, ""},
		{`{"key":"` + fuzzValidKey + `"}`, true, ""},
		{`key=` + fuzzValidKey, false, ""},
		{``, false, "bad header value"},
		{``, false, "\x00\xff"},
	} {
		f.Add([]byte(s.body), s.form, s.header)
	}

	f.Fuzz(func(t *testing.T, body []byte, form bool, header string) {
		req := httptest.NewRequest("POST", "/v1/validate", strings.NewReader(string(body)))
		if form {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		if header != "" {
			req.Header.Set("X-API-Key", header)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)

		if !validateStatuses[rec.Code] {
			t.Fatalf("status %d is not one the contract allows: %s", rec.Code, rec.Body)
		}
		var res struct {
			Valid   *bool   `json:"valid"`
			Code    *string `json:"code"`
			Message string  `json:"message"`
			Key     *struct {
				ID string `json:"id"`
			} `json:"key"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("body is not JSON: %v: %q", err, rec.Body)
		}
		if res.Valid == nil || res.Code == nil || !validateCodes[*res.Code] {
			t.Fatalf("body without valid and a known code: %s", rec.Body)
		}
		if *res.Valid != (rec.Code == http.StatusOK) || (*res.Code == "VALID") != (rec.Code == http.StatusOK) {
			t.Fatalf("status %d with valid=%v code=%s", rec.Code, *res.Valid, *res.Code)
		}
		if rec.Code == http.StatusOK && res.Key == nil {
			t.Fatalf("VALID without the key: %s", rec.Body)
		}
		if rec.Code != http.StatusOK && res.Message == "" {
			t.Fatalf("failure without a message: %s", rec.Body)
		}
		// Only the one usable key may ever be accepted.
		if rec.Code == http.StatusOK && !strings.Contains(string(body), fuzzValidKey) && !strings.Contains(header, fuzzValidKey) {
			t.Fatalf("accepted a request that does not carry the valid key: %q / %q", body, header)
		}
	})
}
