package pluginapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// Keys in the gin context.
const (
	ctxOwner       = "keyd.owner" // store.KeyView of the authenticated primary key
	ctxErrorDetail = "keyd.err"   // internal error detail, for the log only
	// ctxValidateError is the *apiError of a failed validation, for the metrics.
	ctxValidateError = "keyd.validate_error"
)

// recoverPanic turns a panic into a 500 without internals; the detail is logged.
func (s *server) recoverPanic(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			c.Set(ctxErrorDetail, fmt.Sprintf("panic: %v", v))
			writeError(c, errors.New("panic"))
		}
	}()
	c.Next()
}

// limitBody refuses bodies over the limit: at once when Content-Length says
// so, otherwise when reading passes it.
func (s *server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > s.maxBody {
		err := newError(http.StatusRequestEntityTooLarge, codeInvalidRequest, "request body is larger than %d bytes", s.maxBody)
		if c.Request.URL.Path == "/v1/validate" {
			s.validateFailure(c, err, nil)
		} else {
			writeError(c, err)
		}
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody)
	c.Next()
}

// headerAPIKey is X-API-Key as Go spells header names (canonical form), so
// that looking it up needs no conversion on every request.
const headerAPIKey = "X-Api-Key"

// Where a request may carry a key, as the answer to a request that carries
// two different keys names them.
const (
	fromAPIKeyHeader = "the X-API-Key header"
	fromBearer       = "the Authorization: Bearer header"
	fromBody         = "the body's key field"
)

// presentedKey is the one key a request carries: in X-API-Key, as a bearer
// token, or (validate only) in the body's key field, given as bodyKey. Every
// route decides through it, so a request carrying two keys that differ is
// refused the same way everywhere (400 INVALID_REQUEST, naming where the two
// came from) instead of one of them being picked silently. The same key in
// several places is fine. "" with a nil error means no key at all.
//
// Validate calls it on every request, so it allocates only when it refuses.
func presentedKey(r *http.Request, bodyKey string) (string, error) {
	key, from := bodyKey, fromBody
	var err error
	for _, k := range r.Header[headerAPIKey] {
		if key, from, err = sameKey(key, from, k, fromAPIKeyHeader); err != nil {
			return "", err
		}
	}
	for _, auth := range r.Header["Authorization"] {
		if key, from, err = sameKey(key, from, bearerValue(auth), fromBearer); err != nil {
			return "", err
		}
	}
	return key, nil
}

// sameKey adds key k, found in source, to the key found so far (key, from).
func sameKey(key, from, k, source string) (string, string, error) {
	switch {
	case k == "":
		return key, from, nil
	case key == "":
		return k, source, nil
	case k != key:
		if from == source {
			return "", "", badRequest("%s is sent more than once with different keys; send one key", source)
		}
		return "", "", badRequest("%s and %s carry different keys; send one key", from, source)
	}
	return key, from, nil
}

// bearerToken is the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string { return bearerValue(r.Header.Get("Authorization")) }

// bearerValue is the token of an Authorization header's value; "" when it is
// not a bearer token.
func bearerValue(auth string) string {
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:])
	}
	return ""
}

// requirePrimaryKey authenticates an account owner by the account's current
// primary key. Aliases are refused with 403: they never manage anything.
func (s *server) requirePrimaryKey(c *gin.Context) {
	key, err := presentedKey(c.Request, "")
	if err != nil {
		writeError(c, err)
		return
	}
	if key == "" {
		writeError(c, newError(http.StatusUnauthorized, codeUnauthorized, "send the account's primary key in X-API-Key or Authorization: Bearer"))
		return
	}
	if !store.WellFormedKey(key) {
		writeError(c, newError(http.StatusUnauthorized, codeUnauthorized, "the key is not 20 letters and digits"))
		return
	}
	v, ok := s.store.LookupKey(store.HashKey(key))
	if !ok {
		writeError(c, newError(http.StatusUnauthorized, codeUnauthorized, "no such key"))
		return
	}
	setKeyHint(c, v.Hint)
	switch err := v.Check(s.now()); {
	case errors.Is(err, store.ErrAccountSuspended):
		if c.Request.Method != http.MethodGet {
			writeError(c, newError(http.StatusForbidden, codeAccountSuspended, "the account is suspended; it can be read but not changed"))
			return
		}
	case err != nil:
		writeError(c, newError(http.StatusUnauthorized, codeUnauthorized, "the key is %s", keyProblem(err)))
		return
	}
	if !v.IsPrimary() {
		writeError(c, newError(http.StatusForbidden, codePrimaryKeyRequired, "aliases cannot manage the account; use the primary key"))
		return
	}
	if v.ValidUntil != 0 {
		writeError(c, newError(http.StatusUnauthorized, codeUnauthorized, "this key was replaced by a reset; use the new primary key"))
		return
	}
	c.Set(ctxOwner, v)
	c.Next()
}

func keyProblem(err error) string {
	switch {
	case errors.Is(err, store.ErrKeyRevoked):
		return "revoked"
	case errors.Is(err, store.ErrKeyExpired):
		return "expired"
	case errors.Is(err, store.ErrKeyInactive):
		return "deactivated"
	}
	return "not usable"
}

func owner(c *gin.Context) store.KeyView { return c.MustGet(ctxOwner).(store.KeyView) }

func ownerActor(c *gin.Context) store.Actor {
	v := owner(c)
	return store.Actor{Type: v.Type, KeyID: v.KeyID, IP: c.ClientIP()}
}

// requireAdmin checks the operator's bearer token in constant time. Without a
// configured token the admin API does not exist (404).
func (s *server) requireAdmin(c *gin.Context) {
	if !s.adminEnabled {
		writeError(c, newError(http.StatusNotFound, codeNotFound, "no such route"))
		return
	}
	token := bearerToken(c.Request)
	// Comparing hashes keeps the comparison constant-time whatever the lengths.
	given := sha256.Sum256([]byte(token))
	if token == "" || subtle.ConstantTimeCompare(given[:], s.adminTokenHash[:]) != 1 {
		writeError(c, newError(http.StatusUnauthorized, codeUnauthorized, "send the admin token as Authorization: Bearer <token>"))
		return
	}
	c.Next()
}
