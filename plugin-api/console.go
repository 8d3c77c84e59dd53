package pluginapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"keyd/plugin-api/console"
	"keyd/store"
)

// consoleConfig builds the owner console on the same store and clock, with
// the API's own wording of errors: the console implements no rule twice.
func (s *server) consoleConfig() console.Config {
	return console.Config{
		Store:          s.store,
		Scopes:         s.scopes,
		Now:            s.now,
		Logger:         s.log,
		TrustedProxies: s.trustedProxies,

		AllowPrivateWebhooks: s.allowPrivateWebhooks,
		UsageRange:           s.usageRange,
		CheckSubaccount: func(name, email string, credits int64) error {
			return s.validate.Struct(createSubaccountRequest{Name: name, Email: email, Credits: credits})
		},
		Explain: func(err error) console.Problem {
			e := toAPIError(err)
			return console.Problem{Status: e.Status, Message: e.Message, Fields: e.Fields}
		},
	}
}

// adminSignInLink is POST /admin/v1/accounts/{id}/sign-in-link: a one-time
// console sign-in link, valid 15 minutes, for an owner who lost the key.
// The link is built on the address the operator called.
func (s *server) adminSignInLink(c *gin.Context) {
	if err := s.noBody(c); err != nil {
		writeError(c, err)
		return
	}
	token, expires, err := s.store.CreateSignInLink(c.Request.Context(), operator(c), c.Param("id"))
	if errors.Is(err, store.ErrAccountSuspended) {
		writeError(c, newError(http.StatusForbidden, codeAccountSuspended, "the account is suspended; unsuspend it before its owner signs in"))
		return
	}
	if err != nil {
		writeError(c, err)
		return
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	c.JSON(http.StatusCreated, gin.H{"url": scheme + "://" + c.Request.Host + console.SignInLinkPath(token), "expires_at": expires})
}
