package pluginapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

type usageRequest struct {
	Units          int64  `json:"units" validate:"between=1 1000000"`
	Scope          string `json:"scope" validate:"max=64,text"`
	IdempotencyKey string `json:"idempotency_key" validate:"max=128,text"`
}

type usageResponse struct {
	Credits int64 `json:"credits"`
	Charged int64 `json:"charged"`
}

// postUsage is POST /v1/usage: any valid key (an alias too) spends from its
// account's pool.
func (s *server) postUsage(c *gin.Context) {
	key, err := presentedKey(c.Request, "")
	if err != nil {
		writeError(c, err)
		return
	}
	if key == "" {
		writeError(c, fieldError("key", "send the key in X-API-Key"))
		return
	}
	var req usageRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	if req.Scope != "" && !s.scopes.Known(req.Scope) {
		writeError(c, fieldError("scope", "is not a known scope"))
		return
	}
	if !store.WellFormedKey(key) {
		writeError(c, newError(http.StatusUnauthorized, codeMalformed, "the key must be exactly 20 letters and digits"))
		return
	}
	if tk, ok := s.testKey(key); ok {
		tk.answerUsage(c, req.Units)
		return
	}
	v, found := s.store.LookupKey(store.HashKey(key))
	if !found {
		writeError(c, newError(http.StatusUnauthorized, codeNoKey, "no key like this exists"))
		return
	}
	c.Set(ctxKeyHint, v.Hint)
	if err := v.Check(s.now()); err != nil {
		writeError(c, keyCheckError(err, &v))
		return
	}
	verdict := s.limiter.take(v.AccountNum, v.RateLimitPerMinute)
	verdict.setHeaders(c)
	if !verdict.allowed {
		writeError(c, rateLimited(verdict))
		return
	}
	if req.Scope != "" && !v.AllowsScope(req.Scope) {
		writeError(c, newError(http.StatusForbidden, codeScopeDenied, "this key may not be used for %q", req.Scope))
		return
	}
	charge, err := s.store.Spend(c.Request.Context(), &v, req.Units, req.IdempotencyKey)
	if errors.Is(err, store.ErrInsufficientCredits) {
		writeError(c, newError(http.StatusPaymentRequired, codeInsufficient, "the pool has fewer than %d credits; nothing was charged", req.Units))
		return
	}
	if err != nil {
		writeError(c, err)
		return
	}
	if charge.Replayed {
		c.Header("Idempotent-Replayed", "true")
	} else {
		s.metrics.creditsCharged(charge.Charged)
	}
	c.JSON(http.StatusOK, usageResponse{Credits: charge.Credits, Charged: charge.Charged})
}
