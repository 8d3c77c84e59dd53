package pluginapi

import (
	"errors"

	"github.com/go-playground/validator/v10"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

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
}

var validateFormFields = []string{"key", "site", "plugin", "plugin_version", "wp_version", "scope"}

// parseValidateRequest reads the request from a JSON or form body and the
// X-API-Key header and validates it. A key that is present but not 20
// letters and digits is 401 MALFORMED; every other problem is 400.
func (s *server) parseValidateRequest(c *gin.Context) (validateRequest, error) {
	var req validateRequest
	if mediaType(c.Request) == "application/x-www-form-urlencoded" {
		if err := c.Request.ParseForm(); err != nil {
			return req, decodeFormError(err)
		}
		fields := []*string{&req.Key, &req.Site, &req.Plugin, &req.PluginVersion, &req.WPVersion, &req.Scope}
		for i, name := range validateFormFields {
			switch vals := c.Request.PostForm[name]; len(vals) {
			case 0:
			case 1:
				*fields[i] = vals[0]
			default:
				return req, fieldError(name, "appears more than once")
			}
		}
	} else if err := decodeJSON(c.Request, &req, true); err != nil {
		if err == errUnsupportedMedia {
			// Validate's contract has no 415: an unusable body is a 400.
			return req, badRequest("send the body as JSON or as a form (application/x-www-form-urlencoded)")
		}
		return req, err
	}
	if header := c.GetHeader("X-API-Key"); header != "" {
		if req.Key != "" && req.Key != header {
			return req, fieldError("key", "differs from the X-API-Key header; send one key")
		}
		req.Key = header
	}
	err := s.validate.Struct(&req)
	var verr validator.ValidationErrors
	if errors.As(err, &verr) && len(verr) == 1 && verr[0].Tag() == tagAPIKey {
		return req, newError(http.StatusUnauthorized, codeMalformed, "the key must be exactly 20 letters and digits")
	}
	return req, err
}

func decodeFormError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest("request body is not a valid form")
}

type validKeyBody struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	Name      string     `json:"name"`
	Hint      string     `json:"hint"`
	ExpiresAt *time.Time `json:"expires_at"`
	Scopes    []string   `json:"scopes"`
}

type validAccountBody struct {
	ID      string `json:"id"`
	Plan    string `json:"plan"`
	Status  string `json:"status"`
	Credits int64  `json:"credits"`
}

type validBody struct {
	Valid   bool             `json:"valid"`
	Code    string           `json:"code"`
	Key     validKeyBody     `json:"key"`
	Account validAccountBody `json:"account"`
}

type invalidBody struct {
	Valid     bool       `json:"valid"`
	Code      string     `json:"code"`
	Message   string     `json:"message"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// handleValidate is POST /v1/validate. It reads nothing from and writes
// nothing to the database: the key index and the activity recorder are in
// memory.
func (s *server) handleValidate(c *gin.Context) {
	req, err := s.parseValidateRequest(c)
	if err != nil {
		validateFailure(c, toAPIError(err), nil)
		return
	}
	if req.Scope != "" && !s.scopes.Known(req.Scope) {
		validateFailure(c, fieldError("scope", "is not a known scope"), nil)
		return
	}
	v, found := s.store.LookupKey(store.HashKey(req.Key))
	if !found {
		validateFailure(c, newError(http.StatusUnauthorized, codeNoKey, "no key like this exists; check that it was copied whole"), nil)
		return
	}
	c.Set(ctxKeyHint, v.Hint)
	now := s.now()
	report := store.SiteReport{Site: req.Site, Plugin: req.Plugin, PluginVersion: req.PluginVersion, WPVersion: req.WPVersion}
	if err := v.Check(now); err != nil {
		s.store.RecordValidation(&v, false, report, now)
		var expiresAt *time.Time
		if errors.Is(err, store.ErrKeyExpired) {
			expiresAt = unixPtr(v.ExpiresAt)
		}
		validateFailure(c, keyCheckError(err, &v), expiresAt)
		return
	}
	// Only usable keys spend the account's shared limit, so a leaked key that
	// was reset or deleted cannot exhaust it for the account's good keys.
	verdict := s.limiter.take(v.AccountID, v.RateLimitPerMinute)
	verdict.setHeaders(c)
	if !verdict.allowed {
		validateFailure(c, rateLimited(verdict), nil)
		return
	}
	if req.Scope != "" && !v.AllowsScope(req.Scope) {
		s.store.RecordValidation(&v, false, report, now)
		validateFailure(c, newError(http.StatusForbidden, codeScopeDenied, "this key may not be used for %q", req.Scope), nil)
		return
	}
	if !v.AllowsSite(req.Site) {
		s.store.RecordValidation(&v, false, report, now)
		msg := "this key is bound to other sites"
		if req.Site == "" {
			msg = "this key is bound to specific sites; send the site's home URL as site"
		}
		validateFailure(c, newError(http.StatusForbidden, codeSiteNotAllowed, "%s", msg), nil)
		return
	}
	s.store.RecordValidation(&v, true, report, now)
	c.JSON(http.StatusOK, validBody{
		Valid: true,
		Code:  codeValid,
		Key: validKeyBody{ID: v.KeyID, Type: v.Type, Name: v.Name, Hint: v.Hint,
			ExpiresAt: unixPtr(v.ExpiresAt), Scopes: v.Scopes},
		Account: validAccountBody{ID: v.AccountID, Plan: v.Plan, Status: v.AccountStatus, Credits: v.Credits},
	})
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
func validateFailure(c *gin.Context, ae *apiError, expiresAt *time.Time) {
	if ae.Status >= 500 {
		c.Set(ctxErrorDetail, ae.Message)
	}
	c.AbortWithStatusJSON(ae.Status, invalidBody{Code: ae.Code, Message: ae.Message, ExpiresAt: expiresAt})
}
