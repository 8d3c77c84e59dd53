package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"keyd/store"
	"keyd/webhooks"
)

type webhookForm struct {
	URL         string
	Events      string // patterns separated by spaces, commas or lines
	Description string
}

func (f webhookForm) events() []string {
	return strings.FieldsFunc(f.Events, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

type webhooksPage struct {
	Webhooks   []store.Webhook
	Form       webhookForm
	Errors     map[string]string
	FormError  string
	EventTypes []string
	Max        int
}

func (c *console) webhooksPage(g *gin.Context) {
	c.showWebhooks(g, http.StatusOK, webhookForm{Events: "*"}, nil, "")
}

func (c *console) showWebhooks(g *gin.Context, status int, form webhookForm, errs map[string]string, formErr string) {
	list, err := c.store.ListWebhooks(g.Request.Context(), sessionOf(g).AccountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	c.render(g, status, "webhooks", view{Title: "Webhooks", Nav: "webhooks", Data: webhooksPage{
		Webhooks: list, Form: form, Errors: errs, FormError: formErr, EventTypes: store.WebhookEventTypes(), Max: store.MaxWebhooksPerAccount}})
}

// createWebhook is the console's POST /v1/webhooks, with the same URL and
// pattern rules.
func (c *console) createWebhook(g *gin.Context) {
	form := webhookForm{URL: strings.TrimSpace(g.PostForm("url")), Events: g.PostForm("events"), Description: strings.TrimSpace(g.PostForm("description"))}
	errs := map[string]string{}
	if err := webhooks.ValidateURL(form.URL, c.allowPrivateWebhooks); err != nil {
		errs["url"] = err.Error()
	}
	if err := webhooks.ValidatePatterns(form.events()); err != nil {
		errs["events"] = err.Error()
	}
	if len(form.Description) > 200 {
		errs["description"] = "must be at most 200 characters long"
	}
	if len(errs) > 0 {
		c.showWebhooks(g, http.StatusBadRequest, form, errs, "")
		return
	}
	secret := webhooks.NewSecret()
	w, err := c.store.CreateWebhook(g.Request.Context(), actor(g), sessionOf(g).AccountID, store.NewWebhook{
		URL: form.URL, Description: form.Description, Events: form.events(), Secret: secret})
	if err != nil {
		if p := c.explain(err); p.Status < 500 && p.Status != http.StatusNotFound {
			c.showWebhooks(g, p.Status, form, fieldErrors(p), capitalise(p.Message))
			return
		}
		c.fail(g, err)
		return
	}
	c.redirect(g, "webhooks/"+w.ID, flash{notice: "Endpoint added.", shown: &shownKey{
		Label: "Signing secret of the new endpoint", Secret: secret,
		Note: "Copy it now into the receiver: this is the only time keyd shows it. Every message is signed with it (Standard Webhooks)."}})
}

type deliveryRow struct {
	Message store.WebhookMessage
	Attempt *store.WebhookAttempt
	Number  int // the attempt's number within the message, from 1
	First   bool
}

type webhookPage struct {
	Webhook store.Webhook
	Rows    []deliveryRow
	Before  string
	Next    string
}

func (c *console) webhookPage(g *gin.Context) {
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	w, err := c.store.GetWebhook(ctx, accountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	before := g.Query("before")
	msgs, err := c.store.ListMessages(ctx, accountID, w.ID, "", before, pageSize)
	if err != nil {
		c.fail(g, err)
		return
	}
	p := webhookPage{Webhook: w, Before: before}
	if len(msgs) == pageSize {
		p.Next = msgs[len(msgs)-1].ID
	}
	for _, m := range msgs {
		if len(m.Attempts) == 0 {
			p.Rows = append(p.Rows, deliveryRow{Message: m, First: true})
			continue
		}
		for i := len(m.Attempts) - 1; i >= 0; i-- { // newest attempt first
			p.Rows = append(p.Rows, deliveryRow{Message: m, Attempt: &m.Attempts[i], Number: i + 1, First: i == len(m.Attempts)-1})
		}
	}
	c.render(g, http.StatusOK, "webhook", view{Title: "Webhook endpoint", Nav: "webhooks", Data: p})
}

// webhookAction runs one of the endpoint's actions and says what it did.
func (c *console) webhookAction(do func(g *gin.Context, accountID, id string) (flash, error)) gin.HandlerFunc {
	return func(g *gin.Context) {
		id := g.Param("id")
		fl, err := do(g, sessionOf(g).AccountID, id)
		if err != nil {
			c.fail(g, err)
			return
		}
		c.redirect(g, "webhooks/"+id, fl)
	}
}

func (c *console) setWebhookEnabled(enabled bool) gin.HandlerFunc {
	return c.webhookAction(func(g *gin.Context, accountID, id string) (flash, error) {
		_, err := c.store.UpdateWebhook(g.Request.Context(), actor(g), accountID, id, store.WebhookPatch{Enabled: &enabled})
		if enabled {
			return flash{notice: "Endpoint enabled: messages are delivered again."}, err
		}
		return flash{notice: "Endpoint disabled: messages wait until you enable it."}, err
	})
}

func (c *console) testWebhook(g *gin.Context) {
	c.webhookAction(func(g *gin.Context, accountID, id string) (flash, error) {
		m, err := c.store.SendTestMessage(g.Request.Context(), actor(g), accountID, id)
		return flash{notice: "Test message " + m.ID + " queued; reload to see its delivery."}, err
	})(g)
}

func (c *console) rotateWebhookSecret(g *gin.Context) {
	c.webhookAction(func(g *gin.Context, accountID, id string) (flash, error) {
		secret := webhooks.NewSecret()
		_, err := c.store.RotateWebhookSecret(g.Request.Context(), actor(g), accountID, id, secret, webhooks.RotationOverlap)
		return flash{notice: "Secret rotated.", shown: &shownKey{Label: "New signing secret", Secret: secret,
			Note: fmt.Sprintf("Copy it now: this is the only time keyd shows it. For %d hours messages are signed with the old secret too.",
				int(webhooks.RotationOverlap.Hours()))}}, err
	})(g)
}

func (c *console) deleteWebhookPage(g *gin.Context) {
	w, err := c.store.GetWebhook(g.Request.Context(), sessionOf(g).AccountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	c.render(g, http.StatusOK, "confirm", view{Title: "Delete endpoint", Nav: "webhooks", Data: confirmPage{
		Heading: "Delete the endpoint " + w.URL + "?",
		Lines:   []string{"Its messages and their delivery log are deleted with it. This cannot be undone."},
		Action:  Base + "webhooks/" + w.ID + "/delete", Button: "Delete endpoint", Danger: true, Back: Base + "webhooks/" + w.ID}})
}

func (c *console) deleteWebhook(g *gin.Context) {
	if err := c.store.DeleteWebhook(g.Request.Context(), actor(g), sessionOf(g).AccountID, g.Param("id")); err != nil {
		c.fail(g, err)
		return
	}
	c.redirect(g, "webhooks", flash{notice: "Endpoint deleted."})
}

// resendMessage is the console's POST /v1/messages/{id}/resend.
func (c *console) resendMessage(g *gin.Context) {
	m, err := c.store.ResendMessage(g.Request.Context(), sessionOf(g).AccountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	c.redirect(g, "webhooks/"+m.WebhookID, flash{notice: "Message " + m.ID + " goes out again."})
}
