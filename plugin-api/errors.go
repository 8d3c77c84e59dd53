package pluginapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-playground/validator/v10"

	"keyd/store"
)

// Error codes of the HTTP contract that are not validation outcomes.
const (
	codeInvalidRequest     = "INVALID_REQUEST"
	codeUnauthorized       = "UNAUTHORIZED"
	codePrimaryKeyRequired = "PRIMARY_KEY_REQUIRED"
	codeNotFound           = "NOT_FOUND"
	codeNameTaken          = "NAME_TAKEN"
	codeAliasLimit         = "ALIAS_LIMIT_REACHED"
	codeSubaccountLimit    = "SUBACCOUNT_LIMIT_REACHED"
	codeInsufficient       = "INSUFFICIENT_CREDITS"
	codeKeySpendLimit      = "KEY_SPEND_LIMIT_REACHED"
	codeSiteLimit          = "SITE_LIMIT_REACHED"
	codeAccountSuspended   = "ACCOUNT_SUSPENDED"
	codeMethodNotAllowed   = "METHOD_NOT_ALLOWED"
	codeInternal           = "INTERNAL"
	codeScopeExceeds       = "SCOPE_EXCEEDS_PRIMARY"
	codeScopeDenied        = "SCOPE_DENIED"
	codeSiteNotAllowed     = "SITE_NOT_ALLOWED"
	codeRateLimited        = "RATE_LIMITED"
	codeNesting            = "SUBACCOUNT_NESTING"
	codeIdempotency        = "IDEMPOTENCY_MISMATCH"
	codeUnavailable        = "UNAVAILABLE"
	codeWebhookLimit       = "WEBHOOK_LIMIT_REACHED"
	codeStorage            = "STORAGE_UNAVAILABLE"
)

// apiError is an error with what the client is told: status, code, message
// and per-field details. Anything else that reaches the client is a 500 whose
// detail goes to the log only.
type apiError struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, codeInvalidRequest, format, args...)
}

func fieldError(field, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest,
		Message: field + ": " + msg, Fields: map[string]string{field: msg}}
}

// toAPIError is the one mapping from errors to the contract's statuses and codes.
func toAPIError(err error) *apiError {
	var (
		ae   *apiError
		inv  *store.InvalidError
		verr validator.ValidationErrors
		mbe  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return newError(http.StatusRequestEntityTooLarge, codeInvalidRequest, "request body is larger than %d bytes", mbe.Limit)
	case errors.As(err, &inv):
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest, Message: inv.Message, Fields: inv.Fields}
	case errors.As(err, &verr):
		return validationError(verr)
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, codeNotFound, "no such resource")
	case errors.Is(err, store.ErrNameTaken):
		return &apiError{Status: http.StatusConflict, Code: codeNameTaken,
			Message: "an alias of this account already has that name", Fields: map[string]string{"name": "already taken"}}
	case errors.Is(err, store.ErrAliasLimit):
		return newError(http.StatusForbidden, codeAliasLimit, "the plan's alias limit is reached; deactivate or delete an alias, or upgrade the plan")
	case errors.Is(err, store.ErrSubaccountLimit):
		return newError(http.StatusForbidden, codeSubaccountLimit, "the plan's subaccount limit is reached; upgrade the plan to add more subaccounts")
	case errors.Is(err, store.ErrAliasGone):
		return newError(http.StatusNotFound, codeNotFound, "this alias was deleted")
	case errors.Is(err, store.ErrScopeExceeds):
		return &apiError{Status: http.StatusForbidden, Code: codeScopeExceeds,
			Message: "an alias may not allow scopes its primary key does not", Fields: map[string]string{"scopes": "exceed the primary key's scopes"}}
	case errors.Is(err, store.ErrSuspendedByOperator):
		return newError(http.StatusForbidden, codeAccountSuspended, "the operator suspended this subaccount; only the operator can lift the suspension")
	case errors.Is(err, store.ErrSubaccountNesting):
		return newError(http.StatusForbidden, codeNesting, "a subaccount cannot have subaccounts")
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return &apiError{Status: http.StatusConflict, Code: codeIdempotency,
			Message: "this idempotency_key was used with different units", Fields: map[string]string{"idempotency_key": "used with different units"}}
	case errors.Is(err, store.ErrStorageUnavailable):
		return newError(http.StatusServiceUnavailable, codeStorage,
			"keyd cannot write to its database just now (disk full or read-only); nothing was changed, retry later")
	case errors.Is(err, store.ErrClosed):
		return newError(http.StatusServiceUnavailable, codeUnavailable, "keyd is shutting down; retry")
	case errors.Is(err, store.ErrInsufficientCredits):
		return newError(http.StatusPaymentRequired, codeInsufficient, "the credit pool cannot cover this")
	case errors.Is(err, store.ErrWebhookLimit):
		return newError(http.StatusForbidden, codeWebhookLimit, "an account may register at most %d webhooks", store.MaxWebhooksPerAccount)
	}
	return &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"}
}

// validationError names each failing field in the client's terms.
func validationError(verr validator.ValidationErrors) *apiError {
	e := &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest, Fields: map[string]string{}}
	var parts []string
	for _, fe := range verr {
		msg := describeRule(fe)
		e.Fields[fe.Field()] = msg
		parts = append(parts, fe.Field()+": "+msg)
	}
	e.Message = strings.Join(parts, "; ")
	return e
}

// describeRule says what a rule asks in the client's terms, by the kind of
// value it is about: a length for strings, a count for lists, a value for
// numbers.
func describeRule(fe validator.FieldError) string {
	kind := fe.Kind()
	isNumber := kind >= reflect.Int && kind <= reflect.Float64
	isList := kind == reflect.Slice || kind == reflect.Array || kind == reflect.Map
	switch fe.Tag() {
	case "required":
		if isNumber {
			return "must not be 0" // the zero value is all a number field can miss by
		}
		return "is required"
	case "max":
		switch {
		case isNumber:
			return "must be at most " + fe.Param()
		case isList:
			return "must have at most " + fe.Param() + " items"
		}
		return "must be at most " + fe.Param() + " characters long"
	case "min":
		switch {
		case isNumber:
			return "must be at least " + fe.Param()
		case isList:
			return "must have at least " + fe.Param() + " items"
		}
		return "must be at least " + fe.Param() + " characters long"
	case tagBetween:
		lo, hi := betweenBounds(fe.Param())
		return fmt.Sprintf("must be between %d and %d", lo, hi)
	case tagEmail:
		return "is not an email address (at most 254 characters)"
	case "oneof":
		return "must be one of: " + fe.Param()
	case tagAPIKey:
		return "must be 20 letters and digits"
	case tagText:
		return "must be valid UTF-8 without control characters"
	case tagAlias:
		return "must be 1 to 50 letters, digits, spaces, '-' or '_'"
	case tagPlanName:
		return "must be 1 to 32 lower-case letters, digits, '-' or '_'"
	}
	return "is invalid (" + fe.Tag() + ")"
}

// decodeError turns a JSON decoding failure into a message naming the field.
func decodeError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object")
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is not valid JSON")
	case errors.As(err, new(*time.ParseError)):
		return badRequest("a time is not in RFC 3339 form, e.g. 2026-12-01T00:00:00Z")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("request body must be a JSON object")
		}
		// Field is a path that names embedded Go structs too
		// ("expiryFields.ttl"); the client knows only the JSON name at its end.
		field := typ.Field[strings.LastIndex(typ.Field, ".")+1:]
		return fieldError(field, "must be "+jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fieldError(name, "is not a known field")
	}
	return badRequest("request body could not be read: %s", err.Error())
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "a whole number in range"
	case k == "string":
		return "a string"
	case k == "slice":
		return "an array"
	case k == "bool":
		return "true or false"
	case k == "struct", k == "map":
		return "an object"
	}
	return "of another type"
}

// writeError answers with the owner/admin error shape.
func writeError(c *gin.Context, err error) {
	ae := toAPIError(err)
	if ae.Status >= 500 {
		c.Set(ctxErrorDetail, err.Error())
	}
	body := gin.H{"code": ae.Code, "message": ae.Message}
	if len(ae.Fields) > 0 {
		body["fields"] = ae.Fields
	}
	c.AbortWithStatusJSON(ae.Status, gin.H{"error": body})
}
