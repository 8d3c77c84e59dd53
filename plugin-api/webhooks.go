package pluginapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
	"keyd/webhooks"
)

// WebhookStore is what the webhook endpoints need from keyd's store.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, actor store.Actor, accountID string, in store.NewWebhook) (store.Webhook, error)
	ListWebhooks(ctx context.Context, accountID string) ([]store.Webhook, error)
	GetWebhook(ctx context.Context, accountID, id string) (store.Webhook, error)
	UpdateWebhook(ctx context.Context, actor store.Actor, accountID, id string, p store.WebhookPatch) (store.Webhook, error)
	DeleteWebhook(ctx context.Context, actor store.Actor, accountID, id string) error
	RotateWebhookSecret(ctx context.Context, actor store.Actor, accountID, id, secret string, overlap time.Duration) (store.Webhook, error)
	SendTestMessage(ctx context.Context, actor store.Actor, accountID, id string) (store.WebhookMessage, error)
	ListMessages(ctx context.Context, accountID, webhookID, status, before string, limit int) ([]store.WebhookMessage, error)
	ResendMessage(ctx context.Context, accountID, id string) (store.WebhookMessage, error)
	RecoverMessages(ctx context.Context, accountID, webhookID string, since time.Time) (int, error)
}

type createWebhookRequest struct {
	URL         string   `json:"url" validate:"required"`
	Events      []string `json:"events" validate:"required"`
	Description string   `json:"description" validate:"max=200,text"`
}

type webhookWithSecret struct {
	Webhook store.Webhook `json:"webhook"`
	// Secret is shown here and nowhere else.
	Secret string `json:"secret"`
}

// checkWebhookURL applies the URL rules, with private receivers only when
// the operator allows them.
func (s *server) checkWebhookURL(raw string) error {
	if err := webhooks.ValidateURL(raw, s.allowPrivateWebhooks); err != nil {
		return fieldError("url", err.Error())
	}
	return nil
}

func checkEventPatterns(events []string) error {
	if err := webhooks.ValidatePatterns(events); err != nil {
		return fieldError("events", err.Error())
	}
	return nil
}

// createWebhook is POST /v1/webhooks.
func (s *server) createWebhook(c *gin.Context) {
	var req createWebhookRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	if err := s.checkWebhookURL(req.URL); err != nil {
		writeError(c, err)
		return
	}
	if err := checkEventPatterns(req.Events); err != nil {
		writeError(c, err)
		return
	}
	secret := webhooks.NewSecret()
	w, err := s.store.CreateWebhook(c.Request.Context(), ownerActor(c), owner(c).AccountID, store.NewWebhook{
		URL: req.URL, Description: req.Description, Events: req.Events, Secret: secret})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, webhookWithSecret{Webhook: w, Secret: secret})
}

// listWebhooks is GET /v1/webhooks.
func (s *server) listWebhooks(c *gin.Context) {
	list, err := s.store.ListWebhooks(c.Request.Context(), owner(c).AccountID)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"webhooks": list})
}

// getWebhook is GET /v1/webhooks/{id}.
func (s *server) getWebhook(c *gin.Context) {
	w, err := s.store.GetWebhook(c.Request.Context(), owner(c).AccountID, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, w)
}

type patchWebhookRequest struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Enabled     *bool    `json:"enabled"`
	Description *string  `json:"description" validate:"omitnil,max=200,text"`
}

// patchWebhook is PATCH /v1/webhooks/{id}: url, events, enabled, description.
func (s *server) patchWebhook(c *gin.Context) {
	var req patchWebhookRequest
	raw, err := s.bindJSONRaw(c, &req)
	if err != nil {
		writeError(c, err)
		return
	}
	for _, f := range []string{"url", "events", "enabled", "description"} {
		if raw.isNull(f) {
			writeError(c, fieldError(f, "must not be null"))
			return
		}
	}
	if req.URL != nil {
		if err := s.checkWebhookURL(*req.URL); err != nil {
			writeError(c, err)
			return
		}
	}
	if req.Events != nil {
		if err := checkEventPatterns(req.Events); err != nil {
			writeError(c, err)
			return
		}
	}
	w, err := s.store.UpdateWebhook(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"), store.WebhookPatch{
		URL: req.URL, Description: req.Description, Events: req.Events, Enabled: req.Enabled})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, w)
}

// deleteWebhook is DELETE /v1/webhooks/{id}: the endpoint, its messages and
// their attempts are gone.
func (s *server) deleteWebhook(c *gin.Context) {
	if err := s.store.DeleteWebhook(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id")); err != nil {
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// noBody refuses a body with fields on actions that take none; an empty
// body or {} is fine.
func (s *server) noBody(c *gin.Context) error {
	var empty struct{}
	return s.bindJSON(c, &empty, true)
}

// rotateWebhookSecret is POST /v1/webhooks/{id}/rotate-secret. The new
// secret is shown once; the previous one keeps signing for
// webhooks.RotationOverlap.
func (s *server) rotateWebhookSecret(c *gin.Context) {
	if err := s.noBody(c); err != nil {
		writeError(c, err)
		return
	}
	secret := webhooks.NewSecret()
	w, err := s.store.RotateWebhookSecret(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"), secret, webhooks.RotationOverlap)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, webhookWithSecret{Webhook: w, Secret: secret})
}

// testWebhook is POST /v1/webhooks/{id}/test: a webhook.test message to
// this endpoint only, whatever its event patterns.
func (s *server) testWebhook(c *gin.Context) {
	if err := s.noBody(c); err != nil {
		writeError(c, err)
		return
	}
	m, err := s.store.SendTestMessage(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"message": m})
}

// listDeliveries is GET /v1/webhooks/{id}/deliveries?limit=&before=&status=:
// messages newest first, each with its attempts; next_before pages on.
func (s *server) listDeliveries(c *gin.Context) {
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(c, fieldError("limit", "must be a number from 1 to 100"))
			return
		}
		limit = n
	}
	status := c.Query("status")
	switch status {
	case "", store.MessagePending, store.MessageDelivered, store.MessageFailed:
	default:
		writeError(c, fieldError("status", "must be one of: pending, delivered, failed"))
		return
	}
	msgs, err := s.store.ListMessages(c.Request.Context(), owner(c).AccountID, c.Param("id"), status, c.Query("before"), limit)
	if err != nil {
		writeError(c, err)
		return
	}
	var next *string
	if len(msgs) == limit {
		next = &msgs[len(msgs)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"messages": msgs, "next_before": next})
}

type recoverRequest struct {
	Since *time.Time `json:"since" validate:"required"`
}

// recoverWebhook is POST /v1/webhooks/{id}/recover {"since"}: every failed
// message created since then is sent again.
func (s *server) recoverWebhook(c *gin.Context) {
	var req recoverRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	n, err := s.store.RecoverMessages(c.Request.Context(), owner(c).AccountID, c.Param("id"), *req.Since)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"recovered": n})
}

// resendMessage is POST /v1/messages/{id}/resend: the message goes out
// again, with a fresh retry schedule.
func (s *server) resendMessage(c *gin.Context) {
	if err := s.noBody(c); err != nil {
		writeError(c, err)
		return
	}
	m, err := s.store.ResendMessage(c.Request.Context(), owner(c).AccountID, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"message": m})
}
