package pluginapi

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/go-playground/validator/v10"

	"keyd/store"
)

// Validation outcome codes of POST /v1/validate.
const (
	codeValid     = "VALID"
	codeMalformed = "MALFORMED"
	codeNoKey     = "NOT_FOUND"
	codeRevoked   = "REVOKED"
	codeExpired   = "EXPIRED"
	codeInactive  = "INACTIVE"
)

// validateRequest is the body of POST /v1/validate, as JSON or as a form.
type validateRequest struct {
	Key           string `json:"key" form:"key" validate:"required,max=128,apikey"`
	Site          string `json:"site" form:"site" validate:"max=2048,text"`
	Plugin        string `json:"plugin" form:"plugin" validate:"max=100,text"`
	PluginVersion string `json:"plugin_version" form:"plugin_version" validate:"max=50,text"`
	WPVersion     string `json:"wp_version" form:"wp_version" validate:"max=50,text"`
	Scope         string `json:"scope" form:"scope" validate:"max=64,text"`
	// Receipt asks for a signed receipt with a VALID answer (receipts.go).
	Receipt receiptFlag `json:"receipt" form:"receipt" validate:"omitempty,oneof=true false 1 0"`
}

var validateFormFields = []string{"key", "site", "plugin", "plugin_version", "wp_version", "scope", "receipt"}

// field is the request field named validateFormFields[i].
func (r *validateRequest) field(i int) *string {
	return [...]*string{&r.Key, &r.Site, &r.Plugin, &r.PluginVersion, &r.WPVersion, &r.Scope, (*string)(&r.Receipt)}[i]
}

// readValidateForm fills req from a form body. It picks out the fields
// validate knows without building url.Values: this is the path every
// WordPress site takes (wp_remote_post sends forms), so it is kept lean. The
// body becomes one string and the fields are pieces of it; only fields with
// escapes get strings of their own. Other fields are ignored; a known field
// twice is refused.
func readValidateForm(r *http.Request, req *validateRequest) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer bodyBuffers.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return decodeFormError(err)
	}
	body := string(buf.Bytes())
	seen := 0
	for len(body) > 0 {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := formUnescape(rawName)
		if err != nil {
			return badRequest("request body is not a valid form")
		}
		i := slices.Index(validateFormFields, name)
		if i < 0 {
			continue
		}
		if seen&(1<<i) != 0 {
			return fieldError(name, "appears more than once")
		}
		seen |= 1 << i
		if *req.field(i), err = formUnescape(rawValue); err != nil {
			return badRequest("request body is not a valid form")
		}
	}
	return nil
}

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

var errBadEscape = errors.New("bad escape")

// formUnescape decodes one form-encoded name or value ('+' is a space, %XX
// a byte). Without escapes it is s itself.
func formUnescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	var out strings.Builder
	out.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			out.WriteByte(' ')
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errBadEscape
			}
			out.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			out.WriteByte(c)
		}
	}
	return out.String(), nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// plainValid reports whether req certainly passes the validator: a
// well-formed key and short, printable ASCII fields. It lets the common case
// skip the reflective validation pass; anything else goes to the validator,
// which has the last word and words the errors. TestPlainValidImpliesValid
// keeps the two in agreement.
func plainValid(r *validateRequest) bool {
	return store.WellFormedKey(r.Key) && plainText(r.Site, 2048) && plainText(r.Plugin, 100) &&
		plainText(r.PluginVersion, 50) && plainText(r.WPVersion, 50) && plainText(r.Scope, 64) && r.Receipt.known()
}

func plainText(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseValidateRequest reads the request from a JSON or form body and the
// key headers (see presentedKey) and validates it. A key that is present
// but not 20 letters and digits is 401 MALFORMED; every other problem is 400.
func (s *server) parseValidateRequest(c *gin.Context) (validateRequest, error) {
	var req validateRequest
	var err error
	if mediaType(c.Request) == "application/x-www-form-urlencoded" {
		err = readValidateForm(c.Request, &req)
	} else {
		req, err = decodeValidateJSON(c.Request)
	}
	if err != nil {
		return req, err
	}
	if req.Key, err = presentedKey(c.Request, req.Key); err != nil {
		return req, err
	}
	if plainValid(&req) {
		return req, nil // certainly valid: skip the reflective pass
	}
	return req, s.validateRequest(req)
}

// decodeValidateJSON and validateRequest take the request apart from
// parseValidateRequest because they hand it to reflection: kept there, the
// request would be moved to the heap on every validation.
func decodeValidateJSON(r *http.Request) (validateRequest, error) {
	var req validateRequest
	err := decodeJSON(r, &req, true)
	if err == errUnsupportedMedia {
		// Validate's contract has no 415: an unusable body is a 400.
		err = badRequest("send the body as JSON or as a form (application/x-www-form-urlencoded)")
	}
	return req, err
}

func (s *server) validateRequest(req validateRequest) error {
	err := s.validate.Struct(&req)
	var verr validator.ValidationErrors
	if errors.As(err, &verr) && len(verr) == 1 && verr[0].Tag() == tagAPIKey {
		return newError(http.StatusUnauthorized, codeMalformed, "the key must be exactly 20 letters and digits")
	}
	return err
}

func decodeFormError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest("request body is not a valid form")
}

// handleValidate is POST /v1/validate. It reads nothing from and writes
// nothing to the database: the key index and the activity recorder are in
// memory.
func (s *server) handleValidate(c *gin.Context) {
	req, err := s.parseValidateRequest(c)
	if err != nil {
		s.validateFailure(c, toAPIError(err), nil)
		return
	}
	v, ae, expiresAt := s.judgeKey(c, &req)
	if ae != nil {
		s.validateFailure(c, ae, expiresAt)
		return
	}
	buf := encodeBuffers.Get().(*[]byte)
	*buf = appendValidBody((*buf)[:0], &v, s.now())
	if req.Receipt.on() {
		receipt, err := s.receipts.issue(c.Request.Context(), &v, req.Site, s.now())
		if err != nil {
			encodeBuffers.Put(buf)
			s.validateFailure(c, toAPIError(err), nil)
			return
		}
		*buf = appendReceipt(*buf, receipt)
	}
	writeValidateBody(c, http.StatusOK, *buf)
	encodeBuffers.Put(buf)
}

// appendReceipt adds "receipt" to the 200 answer appendValidBody wrote,
// inside its closing brace. A compact JWS is base64url and dots, which
// JSON needs no escape for.
func appendReceipt(b []byte, receipt string) []byte {
	b = append(b[:len(b)-1], `,"receipt":"`...)
	b = append(b, receipt...)
	return append(b, `"}`...)
}

// judgeKey makes the decision of a validation for a well-formed request:
// the key, its status and account, the account's shared rate limit, the
// scope and the site, in that order. It records the outcome in the key's
// activity and sets the rate-limit headers, and returns the key when it may
// be used, or the contract's error (with the expiry for EXPIRED). Every
// route that validates a key (validate and its compatibility routes) comes
// here, so they can never disagree.
func (s *server) judgeKey(c *gin.Context, req *validateRequest) (store.KeyView, *apiError, *time.Time) {
	if req.Scope != "" && !s.scopes.Known(req.Scope) {
		return store.KeyView{}, fieldError("scope", "is not a known scope"), nil
	}
	if tk, ok := s.testKey(req.Key); ok {
		return tk.judge(c, s.now())
	}
	if s.store.RefuseValidations() {
		return store.KeyView{}, errCutOff, nil
	}
	v, found := s.store.LookupKey(store.HashKey(req.Key))
	if !found {
		return v, errNoSuchKey, nil
	}
	setKeyHint(c, v.Hint)
	now := s.now()
	report := store.SiteReport{Site: req.Site, Plugin: req.Plugin, PluginVersion: req.PluginVersion, WPVersion: req.WPVersion}
	if err := v.Check(now); err != nil {
		s.store.RecordValidation(v, false, report, now)
		var expiresAt *time.Time
		if errors.Is(err, store.ErrKeyExpired) {
			expiresAt = unixPtr(v.ExpiresAt)
		}
		return v, keyCheckError(err, &v), expiresAt
	}
	// Only usable keys spend the account's shared limit, so a leaked key that
	// was reset or deleted cannot exhaust it for the account's good keys.
	verdict := s.limiter.take(v.AccountNum, v.RateLimitPerMinute, s.store.LiveReplicas())
	verdict.setHeaders(c)
	if !verdict.allowed {
		return v, rateLimited(verdict), nil
	}
	if req.Scope != "" && !v.AllowsScope(req.Scope) {
		s.store.RecordValidation(v, false, report, now)
		return v, newError(http.StatusForbidden, codeScopeDenied, "this key may not be used for %q", req.Scope), nil
	}
	if !v.AllowsSite(req.Site) {
		s.store.RecordValidation(v, false, report, now)
		return v, siteNotAllowed(req.Site), nil
	}
	if v.MaxSites > 0 {
		slots, err := s.store.UseSite(c.Request.Context(), v, req.Site, now)
		if err != nil {
			s.store.RecordValidation(v, false, report, now)
			return v, siteUseError(err), nil
		}
		v.SitesUsed = slots.Used
	}
	s.store.RecordValidation(v, true, report, now)
	return v, nil, nil
}

// errNoSuchKey is the answer for a key that is not stored: made once, as
// it may be half of all answers when a site is misconfigured.
var errNoSuchKey = newError(http.StatusUnauthorized, codeNoKey, "no key like this exists; check that it was copied whole")

// errCutOff answers validations on a replica set to refuse them while it
// cannot reach the database (--when-cut-off=refuse): a key revoked meanwhile
// on another replica must not be accepted here.
var errCutOff = newError(http.StatusServiceUnavailable, codeStorage, "this server cannot reach its database to confirm keys; try again shortly")

// jsonContentType is the Content-Type of validate's answers, shared by all
// of them (net/http copies header values before writing; nothing changes it).
var jsonContentType = []string{"application/json; charset=utf-8"}

// writeValidateBody sends a JSON answer made by hand, without gin's
// renderers, which allocate for the Content-Type on every answer.
func writeValidateBody(c *gin.Context, status int, body []byte) {
	c.Writer.Header()["Content-Type"] = jsonContentType
	c.Writer.WriteHeader(status)
	c.Writer.Write(body)
}

var encodeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendValidBody writes validate's 200 answer by hand: it is the answer
// sent most often, and reflection-based encoding costs more than all the
// rest of validation. TestValidBodyEncoding checks it against encoding/json.
//
//	{"valid": true, "code": "VALID",
//	 "key": {"id", "type", "name", "hint", "expires_at", "scopes"},
//	 "account": {"id", "plan", "status", "credits"},
//	 "rotation": {"replaced_at", "grace_ends_at"} (only for a primary key
//	   replaced by a reset and still in its grace period),
//	 "spend_limit": {...} (only for a key with one; see appendAllowance),
//	 "sites": {"used", "limit"} (only for a key with max_sites)}
func appendValidBody(b []byte, v *store.KeyView, now time.Time) []byte {
	b = append(b, `{"valid":true,"code":"VALID","key":{"id":`...)
	b = appendJSONString(b, v.KeyID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, v.Type)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, v.Name)
	b = append(b, `,"hint":`...)
	b = appendJSONString(b, v.Hint)
	b = append(b, `,"expires_at":`...)
	if v.ExpiresAt == 0 {
		b = append(b, "null"...)
	} else {
		b = appendUnixTime(b, v.ExpiresAt)
	}
	b = append(b, `,"scopes":[`...)
	for i, scope := range v.Scopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, scope)
	}
	b = append(b, `]},"account":{"id":`...)
	b = appendJSONString(b, v.AccountID)
	b = append(b, `,"plan":`...)
	b = appendJSONString(b, v.Plan)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, v.AccountStatus)
	b = append(b, `,"credits":`...)
	b = strconv.AppendInt(b, v.Credits, 10)
	b = append(b, '}')
	if v.ValidUntil != 0 {
		// Only a key that still validates gets here: it is in its grace.
		b = append(b, `,"rotation":{"replaced_at":`...)
		b = appendUnixTime(b, v.ReplacedAt)
		b = append(b, `,"grace_ends_at":`...)
		b = appendUnixTime(b, v.ValidUntil)
		b = append(b, '}')
	}
	if a, ok := v.Allowance(now); ok {
		b = append(b, `,"spend_limit":`...)
		b = appendAllowance(b, &a)
	}
	if v.MaxSites > 0 {
		b = append(b, `,"sites":{"used":`...)
		b = strconv.AppendInt(b, int64(v.SitesUsed), 10)
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(v.MaxSites), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendUnixTime appends unix seconds as a quoted RFC 3339 time in UTC.
func appendUnixTime(b []byte, sec int64) []byte {
	b = append(b, '"')
	b = time.Unix(sec, 0).UTC().AppendFormat(b, time.RFC3339)
	return append(b, '"')
}

// appendAllowance writes a key's spend limit as store.Allowance encodes:
// {"limit", "period", "spent", "remaining", "resets_at"}.
func appendAllowance(b []byte, a *store.Allowance) []byte {
	b = append(b, `{"limit":`...)
	b = strconv.AppendInt(b, a.Limit, 10)
	b = append(b, `,"period":`...)
	b = appendJSONString(b, a.Period)
	b = append(b, `,"spent":`...)
	b = strconv.AppendInt(b, a.Spent, 10)
	b = append(b, `,"remaining":`...)
	b = strconv.AppendInt(b, a.Remaining, 10)
	b = append(b, `,"resets_at":`...)
	if a.ResetsAt == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = a.ResetsAt.UTC().AppendFormat(b, time.RFC3339)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does (HTML-safe, U+2028 and U+2029 escaped, invalid UTF-8 replaced).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&':
				b = append(b, c)
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func unixPtr(sec int64) *time.Time {
	if sec == 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}

// keyCheckError maps the outcome of KeyView.Check to the contract's codes.
func keyCheckError(err error, v *store.KeyView) *apiError {
	switch {
	case errors.Is(err, store.ErrKeyRevoked):
		if v.IsPrimary() {
			return newError(http.StatusUnauthorized, codeRevoked, "this key was reset; ask the account owner for the new key")
		}
		return newError(http.StatusUnauthorized, codeRevoked, "this key was deleted by the account owner")
	case errors.Is(err, store.ErrKeyExpired):
		return newError(http.StatusUnauthorized, codeExpired, "this key expired on %s", time.Unix(v.ExpiresAt, 0).UTC().Format(time.RFC3339))
	case errors.Is(err, store.ErrKeyInactive):
		return newError(http.StatusUnauthorized, codeInactive, "this key was deactivated by the account owner")
	case errors.Is(err, store.ErrAccountSuspended):
		return newError(http.StatusUnauthorized, codeAccountSuspended, "the account this key belongs to is suspended")
	}
	return toAPIError(err)
}

// validateFailure answers with the validate endpoint's failure shape;
// expiresAt is set for EXPIRED so a plugin can word its notice.
func (s *server) validateFailure(c *gin.Context, ae *apiError, expiresAt *time.Time) {
	if ae.Status >= 500 {
		c.Set(ctxErrorDetail, ae.Message)
	}
	if s.requestMetrics != nil {
		c.Set(ctxValidateError, ae) // a pointer: no allocation to box it
	}
	buf := encodeBuffers.Get().(*[]byte)
	*buf = appendInvalidBody((*buf)[:0], ae, expiresAt)
	writeValidateBody(c, ae.Status, *buf)
	encodeBuffers.Put(buf)
	c.Abort()
}

// appendInvalidBody writes validate's failure answer by hand, as
// appendValidBody does the 200 (checked against encoding/json by
// TestInvalidBodyEncoding):
//
//	{"valid": false, "code", "message", "expires_at" (only for EXPIRED)}
func appendInvalidBody(b []byte, ae *apiError, expiresAt *time.Time) []byte {
	b = append(b, `{"valid":false,"code":`...)
	b = appendJSONString(b, ae.Code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, ae.Message)
	if expiresAt != nil {
		b = append(b, `,"expires_at":"`...)
		b = expiresAt.UTC().AppendFormat(b, time.RFC3339)
		b = append(b, '"')
	}
	return append(b, '}')
}
