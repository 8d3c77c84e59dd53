package pluginapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

type usageRequest struct {
	Units          int64  `json:"units" validate:"between=1 1000000"`
	Scope          string `json:"scope" validate:"max=64,text"`
	Site           string `json:"site" validate:"max=2048,text"`
	IdempotencyKey string `json:"idempotency_key" validate:"max=128,text"`
}

type usageResponse struct {
	Credits int64 `json:"credits"`
	Charged int64 `json:"charged"`
	// SpendLimit is the key's own allowance after the charge, when it has one.
	SpendLimit *store.Allowance `json:"spend_limit,omitempty"`
}

// siteNotAllowed refuses a site a key bound to sites may not be used from.
func siteNotAllowed(site string) *apiError {
	if site == "" {
		return newError(http.StatusForbidden, codeSiteNotAllowed, "this key is bound to specific sites; send the site's home URL as site")
	}
	return newError(http.StatusForbidden, codeSiteNotAllowed, "this key is bound to other sites")
}

// postUsage is POST /v1/usage: any valid key (an alias too) spends from its
// account's pool, within its own spend limit. A key follows its bindings
// here as in validate: one bound to sites must name an allowed site, one
// limited to scopes an allowed scope, so that a key copied elsewhere cannot
// spend either.
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
	setKeyHint(c, v.Hint)
	if err := v.Check(s.now()); err != nil {
		writeError(c, keyCheckError(err, &v))
		return
	}
	verdict := s.limiter.take(v.AccountNum, v.RateLimitPerMinute, s.store.LiveReplicas())
	verdict.setHeaders(c)
	if !verdict.allowed {
		writeError(c, rateLimited(verdict))
		return
	}
	if req.Scope == "" && v.ScopeLimited() {
		writeError(c, newError(http.StatusForbidden, codeScopeDenied, "this key may be used for some scopes only; send the scope this charge is for"))
		return
	}
	if req.Scope != "" && !v.AllowsScope(req.Scope) {
		writeError(c, newError(http.StatusForbidden, codeScopeDenied, "this key may not be used for %q", req.Scope))
		return
	}
	if !v.AllowsSite(req.Site) {
		writeError(c, siteNotAllowed(req.Site))
		return
	}
	charge, err := s.store.Spend(c.Request.Context(), &v, req.Units, req.IdempotencyKey)
	if errors.Is(err, store.ErrInsufficientCredits) {
		writeError(c, newError(http.StatusPaymentRequired, codeInsufficient, "the pool has fewer than %d credits; nothing was charged", req.Units))
		return
	}
	var limited *store.KeySpendLimitError
	if errors.As(err, &limited) {
		a := limited.Allowance
		c.AbortWithStatusJSON(http.StatusPaymentRequired, gin.H{"error": gin.H{
			"code": codeKeySpendLimit, "message": spendLimitMessage(a), "spend_limit": a}})
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
	c.JSON(http.StatusOK, usageResponse{Credits: charge.Credits, Charged: charge.Charged, SpendLimit: charge.Allowance})
}

// spendLimitMessage is the KEY_SPEND_LIMIT_REACHED sentence for a key's
// allowance.
func spendLimitMessage(a store.Allowance) string {
	if a.Period == store.PeriodTotal {
		return fmt.Sprintf("this key may spend %d units in total and has %d left; nothing was charged", a.Limit, a.Remaining)
	}
	return fmt.Sprintf("this key may spend %d units per %s and has %d left; nothing was charged", a.Limit, a.Period, a.Remaining)
}
