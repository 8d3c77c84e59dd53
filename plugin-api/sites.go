package pluginapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// siteUseError maps a refusal of store.UseSite to the contract's codes.
func siteUseError(err error) *apiError {
	var full *store.SiteLimitError
	switch {
	case errors.As(err, &full):
		return newError(http.StatusForbidden, codeSiteLimit,
			"this key is already active on %d of its %d sites; deactivate it on a site it no longer serves, or ask the account owner to release one",
			full.Used, full.Limit)
	case errors.Is(err, store.ErrSiteRequired):
		return newError(http.StatusForbidden, codeSiteNotAllowed, "this key counts the sites it is used on; send the site's home URL as site")
	}
	return toAPIError(err)
}

// releaseSite is DELETE /v1/keys/{id}/sites/{host}: the owner frees the
// slot a site holds (site.released).
func (s *server) releaseSite(c *gin.Context) {
	if _, err := s.store.ReleaseSite(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"), c.Param("host")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = newError(http.StatusNotFound, codeNotFound, "no such key, or this site holds none of its slots")
		}
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type deactivateSiteRequest struct {
	Key  string `json:"key" validate:"max=128"`
	Site string `json:"site" validate:"required,max=2048,text"`
}

// deactivateSite is POST /v1/sites/deactivate: a site that moves frees its
// own slot of the key, and only its own. The key comes as in validate (the
// body's key or a key header) and must be usable.
func (s *server) deactivateSite(c *gin.Context) {
	var req deactivateSiteRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	key, err := presentedKey(c.Request, req.Key)
	if err != nil {
		writeError(c, err)
		return
	}
	switch {
	case key == "":
		writeError(c, fieldError("key", "send the key in the body or in X-API-Key"))
		return
	case !store.WellFormedKey(key):
		writeError(c, newError(http.StatusUnauthorized, codeMalformed, "the key must be exactly 20 letters and digits"))
		return
	}
	v, found := s.store.LookupKey(store.HashKey(key))
	if !found {
		writeError(c, errNoSuchKey)
		return
	}
	setKeyHint(c, v.Hint)
	if err := v.Check(s.now()); err != nil {
		writeError(c, keyCheckError(err, &v))
		return
	}
	released, slots, err := s.store.DeactivateSite(c.Request.Context(), &v, req.Site)
	if err != nil {
		writeError(c, err)
		return
	}
	out := gin.H{"released": released}
	if v.MaxSites > 0 {
		out["sites"] = slots
	}
	c.JSON(http.StatusOK, out)
}
