package pluginapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/go-playground/validator/v10"

	"keyd/store"
)

// Custom validator tags.
const (
	tagAPIKey   = "apikey"    // 20 ASCII letters and digits
	tagText     = "text"      // valid UTF-8 without control characters
	tagPlanName = "planname"  // plan names
	tagAlias    = "aliasname" // alias (and key) names
	tagBetween  = "between"   // a whole number from MIN to MAX: between=MIN MAX
)

// tagEmail is an account owner's email: ValidEmail.
const tagEmail = "accountemail"

// newValidator builds the one validator every request struct goes through.
// Field names in errors are the JSON (or form) names clients sent.
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		for _, tag := range []string{"json", "form"} {
			if name := strings.Split(f.Tag.Get(tag), ",")[0]; name != "" && name != "-" {
				return name
			}
		}
		return f.Name
	})
	must(v.RegisterValidation(tagAPIKey, func(fl validator.FieldLevel) bool {
		return store.WellFormedKey(fl.Field().String())
	}))
	must(v.RegisterValidation(tagText, func(fl validator.FieldLevel) bool {
		return isCleanText(fl.Field().String())
	}))
	must(v.RegisterValidation(tagAlias, func(fl validator.FieldLevel) bool {
		return store.ValidAliasName(fl.Field().String())
	}))
	must(v.RegisterValidation(tagPlanName, func(fl validator.FieldLevel) bool {
		return store.ValidPlanName(fl.Field().String())
	}))
	// between says both bounds of a number in one rule, so that a value
	// out of range is told the whole range, whichever end it missed.
	must(v.RegisterValidation(tagBetween, func(fl validator.FieldLevel) bool {
		lo, hi := betweenBounds(fl.Param())
		n := fl.Field().Int()
		return n >= lo && n <= hi
	}))
	must(v.RegisterValidation(tagEmail, func(fl validator.FieldLevel) bool {
		return ValidEmail(fl.Field().String())
	}))
	return v
}

// betweenBounds reads the "MIN MAX" of a between tag; a malformed tag is a
// programming error caught by the first request that uses it.
func betweenBounds(param string) (lo, hi int64) {
	a, b, _ := strings.Cut(param, " ")
	lo, err1 := strconv.ParseInt(a, 10, 64)
	hi, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || lo > hi {
		panic("between: bad bounds " + strconv.Quote(param))
	}
	return lo, hi
}

// maxEmailLength is the longest address SMTP can carry (RFC 5321).
const maxEmailLength = 254

// emailSyntax holds validator's own email check, for ValidEmail.
var emailSyntax = validator.New()

// ValidEmail is the one rule for an account owner's email, held by the API
// and the command line alike: at most 254 bytes of clean text that
// validator's email check accepts.
func ValidEmail(s string) bool {
	return len(s) <= maxEmailLength && isCleanText(s) && emailSyntax.Var(s, "email") == nil
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// isCleanText reports whether s is valid UTF-8 without control characters
// (NUL bytes and the like have no place in names, emails or versions).
func isCleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// mediaType is the request's content type without parameters, lower-cased.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	switch ct {
	case "", "application/json", "application/x-www-form-urlencoded":
		return ct // what clients send: no parameters to parse
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return mt
}

var errUnsupportedMedia = newError(http.StatusUnsupportedMediaType, codeInvalidRequest,
	"send the body as JSON with Content-Type: application/json")

// bindJSON decodes a JSON object body into dst strictly and validates it.
// An empty body is allowed only when emptyOK, and then leaves dst as it is.
func (s *server) bindJSON(c *gin.Context, dst any, emptyOK bool) error {
	if err := decodeJSON(c.Request, dst, emptyOK); err != nil {
		return err
	}
	return s.validate.Struct(dst)
}

// decodeJSON decodes a JSON object body into dst strictly: unknown fields,
// duplicated keys and trailing data are refused.
func decodeJSON(r *http.Request, dst any, emptyOK bool) error {
	body, err := readJSON(r, emptyOK)
	if err != nil || body == nil {
		return err
	}
	return decodeStrict(body, dst)
}

// readJSON reads a JSON body; nil (and no error) when it is empty and emptyOK.
func readJSON(r *http.Request, emptyOK bool) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, decodeError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if !emptyOK {
			return nil, badRequest("request body is empty; send a JSON object")
		}
		return nil, nil
	}
	if mt := mediaType(r); mt != "application/json" && mt != "" {
		return nil, errUnsupportedMedia
	}
	return body, nil
}

func decodeStrict(body []byte, dst any) error {
	if err := checkJSONShape(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return badRequest("request body holds more than one JSON value")
	}
	return nil
}

// rawFields are a JSON object's top-level members, for telling an explicit
// null from an absent field in a PATCH.
type rawFields map[string]json.RawMessage

func (r rawFields) isNull(name string) bool {
	v, ok := r[name]
	return ok && string(bytes.TrimSpace(v)) == "null"
}

// bindJSONRaw is bindJSON for PATCH bodies: it also returns the raw members.
func (s *server) bindJSONRaw(c *gin.Context, dst any) (rawFields, error) {
	body, err := readJSON(c.Request, false)
	if err != nil {
		return nil, err
	}
	if err := decodeStrict(body, dst); err != nil {
		return nil, err
	}
	var raw rawFields
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, decodeError(err)
	}
	return raw, s.validate.Struct(dst)
}

// maxJSONDepth bounds nesting; no keyd request needs more than a few levels.
const maxJSONDepth = 16

// checkJSONShape refuses a body that is not an object (null would decode as
// an empty object), invalid UTF-8, deep nesting and duplicated object keys,
// which encoding/json would otherwise accept silently (the last duplicate
// winning would let two parsers disagree about a request).
func checkJSONShape(body []byte) error {
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return decodeError(err)
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		} else if tok != json.Delim('{') {
			return badRequest("request body must be a JSON object")
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return badRequest("request body is nested more than %d levels deep", maxJSONDepth)
				}
				if top != nil && top.object {
					top.expectKey = true
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]bool{}, expectKey: t == '{'})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expectKey = true
				}
			}
		default:
			if top != nil && top.object {
				if top.expectKey {
					key, _ := t.(string)
					if top.keys[key] {
						return fieldError(key, "appears more than once")
					}
					top.keys[key] = true
					top.expectKey = false
				} else {
					top.expectKey = true
				}
			}
		}
	}
}

// durationString reads a duration field (ttl, grace_period) from its raw
// JSON: given is false when it is absent or null; anything but a string is
// refused with the grammar's message, so a bare number is never read as
// some unit (store.ParseDuration has the grammar).
func durationString(field string, raw json.RawMessage) (s string, given bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	if json.Unmarshal(raw, &s) != nil {
		return "", false, fieldError(field, store.DurationSyntax)
	}
	return s, true, nil
}

// timeField reads a time field from its raw JSON: nil when it is absent or
// null; anything but an RFC 3339 string is a 400 naming the field.
func timeField(field string, raw json.RawMessage) (*time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var t time.Time
	if json.Unmarshal(raw, &t) != nil {
		return nil, fieldError(field, "must be a time in RFC 3339 form, such as 2026-12-01T00:00:00Z")
	}
	return &t, nil
}

// nullableInt is a JSON field where absent, null and a number mean different
// things in a PATCH: leave as is, clear, set.
type nullableInt struct {
	Set   bool
	Value *int
}

func (n *nullableInt) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = nil
		return nil
	}
	var v int
	if err := json.Unmarshal(b, &v); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeOf(0)}
	}
	n.Value = &v
	return nil
}

func (n nullableInt) String() string {
	if n.Value == nil {
		return "null"
	}
	return fmt.Sprint(*n.Value)
}
