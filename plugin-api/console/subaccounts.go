package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

type subaccountForm struct {
	Name, Email, Credits string
}

type subaccountsPage struct {
	Subaccounts []store.Subaccount
	Slots       store.SubaccountUsage
	Pool        int64
	Before      string
	Next        string
	Form        subaccountForm
	Errors      map[string]string
	FormError   string
	AtLimit     string
	Nested      bool // this account is itself a subaccount
}

func (c *console) subaccountsPage(g *gin.Context) {
	c.showSubaccounts(g, http.StatusOK, subaccountForm{Credits: "0"}, nil, "")
}

func (c *console) showSubaccounts(g *gin.Context, status int, form subaccountForm, errs map[string]string, formErr string) {
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	acc, err := c.store.GetAccount(ctx, accountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	p := subaccountsPage{Before: g.Query("before"), Form: form, Errors: errs, FormError: formErr, Pool: acc.Credits, Nested: acc.ParentID != nil}
	if p.Subaccounts, err = c.store.ListSubaccounts(ctx, accountID, p.Before, pageSize); err != nil {
		c.fail(g, err)
		return
	}
	if len(p.Subaccounts) == pageSize {
		p.Next = p.Subaccounts[len(p.Subaccounts)-1].ID
	}
	if p.Slots, err = c.store.SubaccountSlots(ctx, accountID); err != nil {
		c.fail(g, err)
		return
	}
	if p.Slots.Used >= p.Slots.Limit {
		p.AtLimit = strconv.Itoa(p.Slots.Used) + " of " + strconv.Itoa(p.Slots.Limit) + " subaccounts: change plan to add more."
	}
	c.render(g, status, "subaccounts", view{Title: "Subaccounts", Nav: "subaccounts", Account: acc, Data: p})
}

// createSubaccount is the console's POST /v1/subaccounts: the same field
// rules (the API's own validator, through Config.CheckSubaccount) and the
// same store operation.
func (c *console) createSubaccount(g *gin.Context) {
	form := subaccountForm{Name: strings.TrimSpace(g.PostForm("name")), Email: strings.TrimSpace(g.PostForm("email")),
		Credits: strings.TrimSpace(g.PostForm("credits"))}
	credits, err := strconv.ParseInt(form.Credits, 10, 64)
	if form.Credits == "" {
		credits, err = 0, nil
	}
	if err != nil {
		c.showSubaccounts(g, http.StatusBadRequest, form, map[string]string{"credits": "must be a whole number"}, "")
		return
	}
	if err := c.checkSubaccount(form.Name, form.Email, credits); err != nil {
		p := c.explain(err)
		c.showSubaccounts(g, p.Status, form, p.Fields, "")
		return
	}
	created, err := c.store.CreateSubaccount(g.Request.Context(), actor(g), sessionOf(g).AccountID,
		store.NewAccount{Name: form.Name, Email: form.Email, Credits: credits})
	if err != nil {
		if p := c.explain(err); p.Status < 500 && p.Status != http.StatusNotFound {
			c.showSubaccounts(g, p.Status, form, p.Fields, capitalise(p.Message))
			return
		}
		c.fail(g, err)
		return
	}
	c.redirect(g, "subaccounts", flash{notice: "Subaccount “" + created.Account.Name + "” created with " +
		strconv.FormatInt(created.Account.Credits, 10) + " credits from your pool.", shown: &shownKey{
		Label: "Primary key of subaccount “" + created.Account.Name + "”", Secret: created.Secret,
		Note: "Copy it now and give it to the subaccount's owner: this is the only time keyd shows it."}})
}

// allocateCredits is the console's POST /v1/subaccounts/{id}/credits: the
// form's direction says give (to the subaccount) or reclaim.
func (c *console) allocateCredits(g *gin.Context) {
	amount, err := strconv.ParseInt(strings.TrimSpace(g.PostForm("amount")), 10, 64)
	if err != nil || amount <= 0 {
		c.renderError(g, http.StatusBadRequest, "That did not work", "Amount: give a whole number of credits above 0.")
		return
	}
	verb := "moved to"
	if g.PostForm("direction") == "reclaim" {
		amount, verb = -amount, "reclaimed from"
	}
	sub, err := c.store.AllocateCredits(g.Request.Context(), actor(g), sessionOf(g).AccountID, g.Param("id"), amount)
	if err != nil {
		c.fail(g, err)
		return
	}
	if amount < 0 {
		amount = -amount
	}
	c.redirect(g, "subaccounts", flash{notice: strconv.FormatInt(amount, 10) + " credits " + verb + " “" + sub.Name + "”."})
}

// suspendSubaccount is the console's POST /v1/subaccounts/{id}/suspend and
// /unsuspend: a suspended subaccount's keys stop validating at once.
func (c *console) suspendSubaccount(suspend bool) gin.HandlerFunc {
	return func(g *gin.Context) {
		sub, err := c.store.SuspendSubaccount(g.Request.Context(), actor(g), sessionOf(g).AccountID, g.Param("id"), suspend)
		if err != nil {
			c.fail(g, err)
			return
		}
		what := "suspended: its keys are refused from now on"
		if !suspend {
			what = "active again"
		}
		c.redirect(g, "subaccounts", flash{notice: "Subaccount “" + sub.Name + "” " + what + "."})
	}
}
