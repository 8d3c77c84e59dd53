package pluginapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// keyBody is a key (primary or alias) as GET /v1/keys and the alias
// endpoints show it. Status is as validation sees it now; a primary key
// replaced by a reset that still validates is active and InGrace until
// ValidUntil.
type keyBody struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	Name         string     `json:"name"`
	Hint         string     `json:"hint"`
	Status       string     `json:"status"`
	Scopes       []string   `json:"scopes"`
	AllowedSites []string   `json:"allowed_sites"`
	CreatedAt    time.Time  `json:"created_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	ExpiresAt    *time.Time `json:"expires_at"`
	ValidUntil   *time.Time `json:"valid_until,omitempty"`
	InGrace      bool       `json:"in_grace"`
	// SpendLimit is the key's own cap with what it spent; null for none.
	SpendLimit *store.Allowance `json:"spend_limit"`
	// MaxSites is how many sites may use the key; null for any number.
	MaxSites *int `json:"max_sites"`
	// ReleaseAfter frees the slot of a site unseen this long; null for never.
	ReleaseAfter *string `json:"release_after"`
}

func (s *server) keyBody(k store.Key) keyBody {
	now := s.now()
	return keyBody{ID: k.ID, Type: k.Type, Name: k.Name, Hint: k.Hint, Status: k.StatusAt(now),
		Scopes: k.Scopes, AllowedSites: k.AllowedSites, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt,
		ExpiresAt: k.ExpiresAt, ValidUntil: k.ValidUntil, InGrace: k.InGraceAt(now), SpendLimit: k.AllowanceAt(now),
		MaxSites: k.MaxSites, ReleaseAfter: durationText(k.ReleaseAfter)}
}

// durationText writes d in the duration grammar (store.FormatDuration);
// nil for none.
func durationText(d *time.Duration) *string {
	if d == nil {
		return nil
	}
	s := store.FormatDuration(*d)
	return &s
}

// limitFields are the limits a key takes at creation and by PATCH: in a
// PATCH, a field given sets the limit and null removes it.
type limitFields struct {
	SpendLimit   *store.SpendLimit `json:"spend_limit"`
	MaxSites     *int              `json:"max_sites"`
	ReleaseAfter json.RawMessage   `json:"release_after"` // a duration string; see durationString
}

// patch reads the limits a body sets; raw is the body's members (nil at
// creation, where a field given is a field set).
func (l limitFields) patch(raw rawFields) (store.LimitsPatch, error) {
	after, hasAfter, err := durationString("release_after", l.ReleaseAfter)
	if err != nil {
		return store.LimitsPatch{}, err
	}
	p := store.LimitsPatch{SpendLimit: l.SpendLimit, MaxSites: l.MaxSites}
	if hasAfter {
		d, err := store.ReleaseAfter.Parse(after)
		if err != nil {
			return p, fieldError("release_after", err.Error())
		}
		p.ReleaseAfter = &d
	}
	has := func(name string, set bool) bool {
		_, given := raw[name]
		return set || given
	}
	p.SetSpendLimit = has("spend_limit", l.SpendLimit != nil)
	p.SetMaxSites = has("max_sites", l.MaxSites != nil)
	p.SetReleaseAfter = has("release_after", hasAfter)
	return p, nil
}

// expiryFields are the two ways to give an expiry: a time or a duration
// from now. Both have the same bounds: at least a minute and at most 3650
// days ahead.
type expiryFields struct {
	ExpiresAt json.RawMessage `json:"expires_at"` // an RFC 3339 time; see timeField
	TTL       json.RawMessage `json:"ttl"`        // a duration string; see durationString
}

// expiry resolves expires_at / ttl; set is false when neither was given.
func (e expiryFields) expiry(now time.Time) (at *time.Time, set bool, err error) {
	ttl, hasTTL, err := durationString("ttl", e.TTL)
	if err != nil {
		return nil, false, err
	}
	expiresAt, err := timeField("expires_at", e.ExpiresAt)
	switch {
	case err != nil:
		return nil, false, err
	case expiresAt != nil && hasTTL:
		return nil, false, fieldError("ttl", "give either expires_at or ttl, not both")
	case hasTTL:
		t, err := store.ExpiryFromTTL(now, ttl)
		if err != nil {
			return nil, false, err
		}
		return &t, true, nil
	case expiresAt != nil:
		t := expiresAt.UTC().Truncate(time.Second)
		if err := store.CheckExpiresAt(now, t); err != nil {
			return nil, false, err
		}
		return &t, true, nil
	}
	return nil, false, nil
}

type createAliasRequest struct {
	Name string `json:"name" validate:"required,aliasname"`
	expiryFields
	Scopes       []string `json:"scopes" validate:"omitempty,max=100,dive,max=65"`
	AllowedSites []string `json:"allowed_sites" validate:"omitempty,max=100,dive,max=253"`
	limitFields
}

type createdAliasResponse struct {
	Alias keyBody `json:"alias"`
	Key   string  `json:"key"`
}

// createAlias is POST /v1/aliases.
func (s *server) createAlias(c *gin.Context) {
	var req createAliasRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	expiresAt, _, err := req.expiry(s.now())
	if err != nil {
		writeError(c, err)
		return
	}
	limits, err := req.limitFields.patch(nil)
	if err != nil {
		writeError(c, err)
		return
	}
	created, err := s.store.CreateAlias(c.Request.Context(), ownerActor(c), owner(c).AccountID, store.NewAlias{
		Name: req.Name, ExpiresAt: expiresAt, Scopes: req.Scopes, AllowedSites: req.AllowedSites,
		SpendLimit: limits.SpendLimit, MaxSites: limits.MaxSites, ReleaseAfter: limits.ReleaseAfter})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, createdAliasResponse{Alias: s.keyBody(created.Key), Key: created.Secret})
}

type patchAliasRequest struct {
	Name         *string  `json:"name" validate:"omitnil,aliasname"`
	expiryFields          // "expires_at": null makes the alias permanent
	Scopes       []string `json:"scopes" validate:"omitnil,max=100,dive,max=65"`
	AllowedSites []string `json:"allowed_sites" validate:"omitnil,max=100,dive,max=253"`
	limitFields           // null removes a limit
}

// patchAlias is PATCH /v1/aliases/{id}.
func (s *server) patchAlias(c *gin.Context) {
	var req patchAliasRequest
	raw, err := s.bindJSONRaw(c, &req)
	if err != nil {
		writeError(c, err)
		return
	}
	patch := store.AliasPatch{Name: req.Name, Scopes: req.Scopes, AllowedSites: req.AllowedSites}
	if patch.LimitsPatch, err = req.limitFields.patch(raw); err != nil {
		writeError(c, err)
		return
	}
	if patch.ExpiresAt, patch.SetExpiry, err = req.expiry(s.now()); err != nil {
		writeError(c, err)
		return
	}
	if !patch.SetExpiry && raw.isNull("expires_at") {
		patch.SetExpiry = true // "expires_at": null makes the alias permanent
	}
	if raw.isNull("scopes") || raw.isNull("allowed_sites") {
		writeError(c, badRequest("scopes and allowed_sites take a list; send [] to clear allowed_sites"))
		return
	}
	k, err := s.store.UpdateAlias(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"), patch)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, s.keyBody(k))
}

// setAliasStatus is POST /v1/aliases/{id}/deactivate and /reactivate.
func (s *server) setAliasStatus(active bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		k, err := s.store.SetAliasStatus(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"), active)
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, s.keyBody(k))
	}
}

// deleteAlias is DELETE /v1/aliases/{id}.
func (s *server) deleteAlias(c *gin.Context) {
	if err := s.store.DeleteAlias(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id")); err != nil {
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// listAliases is GET /v1/aliases?status=&limit=&before=: the account's
// aliases newest first, those with the status given (as validation sees it
// now) or all; next_before pages on, as in the audit log.
func (s *server) listAliases(c *gin.Context) {
	limit, err := queryLimit(c, 50, 500)
	if err != nil {
		writeError(c, err)
		return
	}
	status := c.Query("status")
	switch status {
	case "", store.KeyActive, store.KeyInactive, store.KeyExpired, store.KeyRevoked:
	default:
		writeError(c, fieldError("status", "must be one of: active, inactive, expired, revoked"))
		return
	}
	keys, err := s.store.ListAliases(c.Request.Context(), owner(c).AccountID, status, c.Query("before"), limit)
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]keyBody, 0, len(keys))
	for _, k := range keys {
		out = append(out, s.keyBody(k))
	}
	var next *string
	if len(keys) == limit {
		next = &keys[len(keys)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"aliases": out, "next_before": next})
}

// getAlias is GET /v1/aliases/{id}.
func (s *server) getAlias(c *gin.Context) {
	k, err := s.store.GetAlias(c.Request.Context(), owner(c).AccountID, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, s.keyBody(k))
}

// listKeys is GET /v1/keys.
func (s *server) listKeys(c *gin.Context) {
	keys, err := s.store.ListKeys(c.Request.Context(), owner(c).AccountID)
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]keyBody, 0, len(keys))
	for _, k := range keys {
		out = append(out, s.keyBody(k))
	}
	c.JSON(http.StatusOK, gin.H{"keys": out})
}

type patchKeyRequest struct {
	Name        *string  `json:"name" validate:"omitnil,aliasname"`
	Scopes      []string `json:"scopes" validate:"omitnil,max=100,dive,max=65"`
	limitFields          // null removes a limit
}

// patchKey is PATCH /v1/keys/{id}: the primary key's name, scopes and limits.
func (s *server) patchKey(c *gin.Context) {
	var req patchKeyRequest
	raw, err := s.bindJSONRaw(c, &req)
	if err != nil {
		writeError(c, err)
		return
	}
	limits, err := req.limitFields.patch(raw)
	if err != nil {
		writeError(c, err)
		return
	}
	k, err := s.store.PatchPrimaryKey(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"), store.PrimaryPatch{
		Name: req.Name, Scopes: req.Scopes, LimitsPatch: limits})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, s.keyBody(k))
}

// revokeKey is POST /v1/keys/{id}/revoke: ends a reset key's grace period
// now, for an owner who fears the old key has leaked.
func (s *server) revokeKey(c *gin.Context) {
	if err := s.noBody(c); err != nil {
		writeError(c, err)
		return
	}
	k, err := s.store.RevokeGrace(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, s.keyBody(k))
}

// listKeySites is GET /v1/keys/{id}/sites.
func (s *server) listKeySites(c *gin.Context) {
	sites, err := s.store.ListKeySites(c.Request.Context(), owner(c).AccountID, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"sites": sites})
}

// getUsage is GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD&key_id=.
func (s *server) getUsage(c *gin.Context) {
	from, to, err := s.usageRange(c.Query("from"), c.Query("to"))
	if err != nil {
		writeError(c, err)
		return
	}
	rows, err := s.store.ListUsage(c.Request.Context(), owner(c).AccountID, from.Format(time.DateOnly), to.Format(time.DateOnly), c.Query("key_id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"from": from.Format(time.DateOnly), "to": to.Format(time.DateOnly), "usage": rows})
}

// usageRange reads a usage report's from and to (YYYY-MM-DD, both
// included): the last 30 days by default, at most 366 days. The owner
// console uses it too.
func (s *server) usageRange(fromParam, toParam string) (from, to time.Time, err error) {
	today := s.now().UTC()
	if from, err = queryDay("from", fromParam, today.AddDate(0, 0, -29)); err != nil {
		return from, to, err
	}
	if to, err = queryDay("to", toParam, today); err != nil {
		return from, to, err
	}
	if to.Before(from) {
		return from, to, fieldError("to", "must not be before from")
	}
	if to.Sub(from) > 366*24*time.Hour {
		return from, to, fieldError("from", "the range may span at most 366 days")
	}
	return from, to, nil
}

func queryDay(name, v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def.Truncate(24 * time.Hour), nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return t, fieldError(name, "must be a date as YYYY-MM-DD")
	}
	return t, nil
}

// queryLimit is the limit query parameter of a paged list: def when absent,
// otherwise a number from 1 to max.
func queryLimit(c *gin.Context, def, max int) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, fieldError("limit", fmt.Sprintf("must be a number from 1 to %d", max))
	}
	return n, nil
}

// getAudit is GET /v1/audit?limit=&before=: newest first; next_before pages on.
func (s *server) getAudit(c *gin.Context) {
	limit, err := queryLimit(c, 50, 500)
	if err != nil {
		writeError(c, err)
		return
	}
	entries, err := s.store.ListAudit(c.Request.Context(), owner(c).AccountID, c.Query("before"), limit)
	if err != nil {
		writeError(c, err)
		return
	}
	var next *string
	if len(entries) == limit {
		next = &entries[len(entries)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"events": entries, "next_before": next})
}
