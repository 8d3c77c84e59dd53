package pluginapi

import (
	_ "embed"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"keyd/plugin-api/console"
)

//go:embed openapi.yaml
var openAPIDocument []byte

// routes lists the whole HTTP surface of keyd.
func (s *server) routes(r *gin.Engine) error {
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openAPIDocument) })

	// Site plugins.
	r.POST("/v1/validate", s.handleValidate)
	r.POST("/v1/usage", s.postUsage)
	r.GET(receiptKeysPath, s.getReceiptKeys)
	r.POST("/v1/sites/deactivate", s.deactivateSite)
	if s.compatSPIO {
		// Plugins written the ShortPixel way (spio.go).
		for _, path := range []string{"/v2/api-status.php", "/v2/api-status"} {
			r.POST(path, s.handleSPIOStatus)
			r.GET(path, s.handleSPIOStatus)
		}
	}

	// Account owners, with the account's primary key.
	owner := r.Group("/v1", s.requirePrimaryKey)
	owner.GET("/account", s.getAccount)
	owner.PATCH("/account", s.patchAccount)
	owner.POST("/account/reset-key", s.resetKey)
	owner.GET("/keys", s.listKeys)
	owner.PATCH("/keys/:id", s.patchKey)
	owner.POST("/keys/:id/revoke", s.revokeKey)
	owner.GET("/keys/:id/sites", s.listKeySites)
	owner.DELETE("/keys/:id/sites/:host", s.releaseSite)
	owner.POST("/aliases", s.createAlias)
	owner.GET("/aliases", s.listAliases)
	owner.GET("/aliases/:id", s.getAlias)
	owner.PATCH("/aliases/:id", s.patchAlias)
	owner.DELETE("/aliases/:id", s.deleteAlias)
	owner.POST("/aliases/:id/deactivate", s.setAliasStatus(false))
	owner.POST("/aliases/:id/reactivate", s.setAliasStatus(true))
	owner.GET("/usage", s.getUsage)
	owner.POST("/subaccounts", s.createSubaccount)
	owner.GET("/subaccounts", s.listSubaccounts)
	owner.POST("/subaccounts/:id/credits", s.allocateCredits)
	owner.POST("/subaccounts/:id/suspend", s.suspendSubaccount(true))
	owner.POST("/subaccounts/:id/unsuspend", s.suspendSubaccount(false))
	owner.GET("/subaccounts/:id/keys", s.listSubaccountKeys)
	owner.GET("/audit", s.getAudit)
	owner.POST("/webhooks", s.createWebhook)
	owner.GET("/webhooks", s.listWebhooks)
	owner.GET("/webhooks/:id", s.getWebhook)
	owner.PATCH("/webhooks/:id", s.patchWebhook)
	owner.DELETE("/webhooks/:id", s.deleteWebhook)
	owner.POST("/webhooks/:id/rotate-secret", s.rotateWebhookSecret)
	owner.POST("/webhooks/:id/test", s.testWebhook)
	owner.GET("/webhooks/:id/deliveries", s.listDeliveries)
	owner.POST("/webhooks/:id/recover", s.recoverWebhook)
	owner.POST("/messages/:id/resend", s.resendMessage)

	// The operator, with the admin token.
	admin := r.Group("/admin/v1", s.requireAdmin)
	admin.POST("/accounts", s.adminCreateAccount)
	admin.GET("/accounts", s.adminListAccounts)
	admin.GET("/accounts/:id", s.adminGetAccount)
	admin.PATCH("/accounts/:id", s.adminUpdateAccount)
	admin.POST("/accounts/:id/credits", s.adminAddCredits)
	admin.POST("/accounts/:id/reset-key", s.adminResetKey)
	admin.POST("/accounts/:id/sign-in-link", s.adminSignInLink)
	admin.GET("/plans", s.adminListPlans)
	admin.PUT("/plans/:name", s.adminPutPlan)
	admin.GET("/jobs", s.adminListJobs)

	// The owner console (HTML pages, its own sessions): plugin-api/console.
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, console.Base) })
	consoleFallback, err := console.Mount(r.Group(console.Base), s.consoleConfig())
	if err != nil {
		return err
	}

	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, console.Base) {
			consoleFallback(c, http.StatusNotFound)
			return
		}
		writeError(c, newError(http.StatusNotFound, codeNotFound, "no such route"))
	})
	r.NoMethod(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, console.Base) {
			consoleFallback(c, http.StatusMethodNotAllowed)
			return
		}
		if !s.adminEnabled && strings.HasPrefix(c.Request.URL.Path, "/admin/") {
			// Without a token the admin API does not exist, whatever the method.
			writeError(c, newError(http.StatusNotFound, codeNotFound, "no such route"))
			return
		}
		writeError(c, newError(http.StatusMethodNotAllowed, codeMethodNotAllowed, "%s is not allowed here", c.Request.Method))
	})
	return nil
}

// healthz answers while the process runs; it touches nothing.
func (s *server) healthz(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", []byte(`{"status":"ok"}`))
}

// readyz answers 200 when the database answers.
func (s *server) readyz(c *gin.Context) {
	if err := s.store.Ping(c.Request.Context()); err != nil {
		c.Set(ctxErrorDetail, err.Error())
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "message": "the database does not answer"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
