package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// aliasForm is the create and edit form as the owner filled it in, so that
// a refused form comes back as it was sent.
type aliasForm struct {
	Name string
	// Lifetime is "permanent", a duration of the alias grammar ("1d",
	// "7d", "30d") or "date" with ExpiresAt; "keep" on the edit form.
	Lifetime  string
	ExpiresAt string // as a datetime-local input gives it: YYYY-MM-DDTHH:MM, UTC
	Scopes    []string
	Sites     string // one host or pattern a line
	limitForm
}

// The lifetimes the form offers.
var lifetimes = []struct{ Value, Label string }{
	{"permanent", "Permanent"}, {"1d", "1 day"}, {"7d", "7 days"}, {"30d", "30 days"}, {"date", "Until a date"},
}

// Grace periods the reset confirmation offers, as the API's grace_period.
var graceChoices = []struct{ Value, Label, Note string }{
	{"0s", "Now", "the current key stops working at once"},
	{"1h", "In 1 hour", ""},
	{"24h", "In 24 hours", ""},
	{"7d", "In 7 days", ""},
}

type aliasRow struct {
	store.Key
	State        string           // status as validation sees it now
	Allowance    *store.Allowance // the spend limit with what was spent; nil for none
	ReleaseAfter string           // in the duration grammar; "" for never
	SiteLimit    int              // max_sites; 0 for any number
}

// row is a key as the tables show it at now.
func row(k store.Key, now time.Time) aliasRow {
	r := aliasRow{Key: k, State: k.StatusAt(now), Allowance: k.AllowanceAt(now)}
	if k.ReleaseAfter != nil {
		r.ReleaseAfter = store.FormatDuration(*k.ReleaseAfter)
	}
	if k.MaxSites != nil {
		r.SiteLimit = *k.MaxSites
	}
	return r
}

type keysPage struct {
	Primary   aliasRow
	Previous  []aliasRow // primary keys replaced by a reset, still in grace
	Aliases   []aliasRow
	Before    string // the page shown starts after this alias
	Next      string // where the next page starts; "" on the last
	Slots     store.AliasUsage
	AtLimit   string // why no alias can be created now; "" when one can
	Form      aliasForm
	Errors    map[string]string
	FormError string
	Lifetimes any
	Scopes    []string // the scope rules the form offers
	// The primary key's limits form, with its errors.
	PrimaryLimits limitFieldsView
	PrimaryError  string
}

// keysForms are the keys page's two forms as sent, with their errors.
type keysForms struct {
	alias       aliasForm
	aliasErrs   map[string]string
	aliasErr    string
	primary     limitForm
	primaryErrs map[string]string
	primaryErr  string
}

// keys reads the account's keys: the current primary and those in grace.
func (c *console) keys(g *gin.Context, accountID string) (primary aliasRow, previous []aliasRow, err error) {
	keys, err := c.store.ListPrimaryKeys(g.Request.Context(), accountID)
	if err != nil {
		return primary, nil, err
	}
	now := c.now()
	for _, k := range keys {
		switch {
		case k.ValidUntil == nil && k.StatusAt(now) == store.KeyActive:
			primary = row(k, now)
		case k.InGraceAt(now):
			previous = append(previous, row(k, now))
		}
	}
	return primary, previous, nil
}

// scopeChoices are the scope rules the alias form offers: every scope rule
// the primary key allows, with the catalogue's names under "*".
func (c *console) scopeChoices(primary aliasRow) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range primary.Scopes {
		if r == "*" {
			add("*")
			for _, n := range c.scopes.Names() {
				if store.ScopeAllowed(primary.Scopes, n) {
					add(n)
				}
			}
		} else if !strings.HasPrefix(r, "!") {
			add(r)
		}
	}
	return out
}

// newAliasForm is the create form as the keys page first shows it.
func newAliasForm() aliasForm {
	return aliasForm{Lifetime: "permanent", Scopes: []string{"*"}, limitForm: limitForm{SpendPeriod: store.PeriodMonth}}
}

func (c *console) keysPage(g *gin.Context) {
	c.showKeys(g, http.StatusOK, newAliasForm(), nil, "")
}

// showKeys renders the keys page, with the create form as given and its
// errors.
func (c *console) showKeys(g *gin.Context, status int, form aliasForm, errs map[string]string, formErr string) {
	c.showKeysWith(g, status, keysForms{alias: form, aliasErrs: errs, aliasErr: formErr})
}

// showKeysWith renders the keys page with its forms as given; the primary
// key's limits form shows the key's limits unless it was the one sent.
func (c *console) showKeysWith(g *gin.Context, status int, f keysForms) {
	if f.alias.Lifetime == "" {
		f.alias = newAliasForm()
	}
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	primary, previous, err := c.keys(g, accountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	before := g.Query("before")
	list, err := c.store.ListAliases(ctx, accountID, "", before, pageSize)
	if err != nil {
		c.fail(g, err)
		return
	}
	slots, err := c.store.AliasSlots(ctx, accountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	if f.primaryErrs == nil && f.primaryErr == "" {
		f.primary = limitFormOf(primary.Key)
	}
	p := keysPage{Primary: primary, Previous: previous, Before: before, Slots: slots, Form: f.alias, Errors: f.aliasErrs,
		FormError: f.aliasErr, Lifetimes: lifetimes, Scopes: c.scopeChoices(primary),
		PrimaryLimits: limitFields("primary", f.primary, f.primaryErrs), PrimaryError: f.primaryErr}
	now := c.now()
	for _, k := range list {
		p.Aliases = append(p.Aliases, row(k, now))
	}
	if len(list) == pageSize {
		p.Next = list[len(list)-1].ID
	}
	if slots.Used >= slots.Limit {
		p.AtLimit = fmt.Sprintf("%d of %d aliases in use: deactivate one or change plan.", slots.Used, slots.Limit)
	}
	c.render(g, status, "keys", view{Title: "API keys", Nav: "keys", Data: p})
}

// readAliasForm reads the create or edit form.
func readAliasForm(g *gin.Context) aliasForm {
	return aliasForm{
		Name:      strings.TrimSpace(g.PostForm("name")),
		Lifetime:  g.PostForm("lifetime"),
		ExpiresAt: strings.TrimSpace(g.PostForm("expires_at")),
		Scopes:    g.PostFormArray("scopes"),
		Sites:     g.PostForm("allowed_sites"),
		limitForm: readLimitForm(g),
	}
}

// sites is the allowed sites field as a list: one a line (or comma
// separated), blanks dropped.
func (f aliasForm) sites() []string {
	out := []string{}
	for _, line := range strings.FieldsFunc(f.Sites, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
		if s := strings.TrimSpace(line); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// expiry turns the lifetime choice into an expiry by the API's own rules
// (ttl and expires_at); set is false for "keep".
func (f aliasForm) expiry(now time.Time) (at *time.Time, set bool, fieldErr map[string]string) {
	switch f.Lifetime {
	case "keep":
		return nil, false, nil
	case "permanent":
		return nil, true, nil
	case "date":
		t, err := time.Parse("2006-01-02T15:04", f.ExpiresAt)
		if err != nil {
			if t, err = time.Parse("2006-01-02T15:04:05", f.ExpiresAt); err != nil {
				return nil, false, map[string]string{"expires_at": "must be a date and time, e.g. 2026-12-01 00:00 (UTC)"}
			}
		}
		if err := store.CheckExpiresAt(now, t); err != nil {
			return nil, false, map[string]string{"expires_at": err.(*store.InvalidError).Fields["expires_at"]}
		}
		return &t, true, nil
	case "1d", "7d", "30d":
		t, err := store.ExpiryFromTTL(now, f.Lifetime)
		if err != nil {
			return nil, false, map[string]string{"expires_at": err.Error()}
		}
		return &t, true, nil
	}
	return nil, false, map[string]string{"expires_at": "choose how long the alias works"}
}

// createAlias is the console's POST /v1/aliases.
func (c *console) createAlias(g *gin.Context) {
	form := readAliasForm(g)
	expiresAt, _, errs := form.expiry(c.now())
	limits, limitErrs := form.patch()
	if errs != nil || limitErrs != nil {
		c.showKeys(g, http.StatusBadRequest, form, merge(errs, limitErrs), "")
		return
	}
	created, err := c.store.CreateAlias(g.Request.Context(), actor(g), sessionOf(g).AccountID, store.NewAlias{
		Name: form.Name, ExpiresAt: expiresAt, Scopes: nonNil(form.Scopes), AllowedSites: form.sites(),
		SpendLimit: limits.SpendLimit, MaxSites: limits.MaxSites, ReleaseAfter: limits.ReleaseAfter})
	if err != nil {
		if p := c.explain(err); p.Status < 500 && p.Status != http.StatusNotFound {
			c.showKeys(g, p.Status, form, fieldErrors(p), formMessage(p, aliasFieldNames))
			return
		}
		c.fail(g, err)
		return
	}
	c.redirect(g, "keys", flash{notice: "Alias “" + created.Key.Name + "” created.", shown: &shownKey{
		Label: "New key for alias “" + created.Key.Name + "”", Secret: created.Secret,
		Note: "Copy it now: this is the only time keyd shows it. Put it in the client site's plugin settings."}})
}

// merge is the field errors of a and b together.
func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// fieldErrors are the per-field messages of a problem, keyed by form field:
// ttl belongs to the lifetime choice like expires_at.
func fieldErrors(p Problem) map[string]string {
	out := map[string]string{}
	for k, v := range p.Fields {
		if k == "ttl" {
			k = "expires_at"
		}
		out[k] = v
	}
	return out
}

type editAliasPage struct {
	Alias     aliasRow
	Form      aliasForm
	Errors    map[string]string
	FormError string
	Lifetimes any
	Scopes    []string
}

func (c *console) editAliasPage(g *gin.Context) {
	k, err := c.store.GetAlias(g.Request.Context(), sessionOf(g).AccountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	form := aliasForm{Name: k.Name, Lifetime: "keep", Scopes: k.Scopes, Sites: strings.Join(k.AllowedSites, "\n"), limitForm: limitFormOf(k)}
	c.showEditAlias(g, http.StatusOK, k, form, nil, "")
}

func (c *console) showEditAlias(g *gin.Context, status int, k store.Key, form aliasForm, errs map[string]string, formErr string) {
	primary, _, err := c.keys(g, sessionOf(g).AccountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	scopes := c.scopeChoices(primary)
	for _, s := range k.Scopes { // keep what the alias has even if the primary no longer offers it
		if !contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	c.render(g, status, "alias_edit", view{Title: "Edit alias", Nav: "keys", Data: editAliasPage{
		Alias: row(k, c.now()), Form: form, Errors: errs, FormError: formErr,
		Lifetimes: append([]struct{ Value, Label string }{{"keep", "Keep as it is"}}, lifetimes...), Scopes: scopes}})
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// updateAlias is the console's PATCH /v1/aliases/{id}.
func (c *console) updateAlias(g *gin.Context) {
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	k, err := c.store.GetAlias(ctx, accountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	form := readAliasForm(g)
	patch := store.AliasPatch{Name: &form.Name, Scopes: nonNil(form.Scopes), AllowedSites: form.sites()}
	var errs, limitErrs map[string]string
	patch.ExpiresAt, patch.SetExpiry, errs = form.expiry(c.now())
	if patch.LimitsPatch, limitErrs = form.patch(); errs != nil || limitErrs != nil {
		c.showEditAlias(g, http.StatusBadRequest, k, form, merge(errs, limitErrs), "")
		return
	}
	updated, err := c.store.UpdateAlias(ctx, actor(g), accountID, k.ID, patch)
	if err != nil {
		if p := c.explain(err); p.Status < 500 && p.Status != http.StatusNotFound {
			c.showEditAlias(g, p.Status, k, form, fieldErrors(p), formMessage(p, aliasFieldNames))
			return
		}
		c.fail(g, err)
		return
	}
	c.redirect(g, "keys", flash{notice: "Alias “" + updated.Name + "” saved."})
}

// setAliasStatus is the console's POST /v1/aliases/{id}/deactivate and
// /reactivate.
func (c *console) setAliasStatus(active bool) gin.HandlerFunc {
	return func(g *gin.Context) {
		k, err := c.store.SetAliasStatus(g.Request.Context(), actor(g), sessionOf(g).AccountID, g.Param("id"), active)
		if err != nil {
			c.fail(g, err)
			return
		}
		what := "deactivated: sites using it are refused from now on"
		if active {
			what = "reactivated"
		}
		c.redirect(g, "keys", flash{notice: "Alias “" + k.Name + "” " + what + "."})
	}
}

type confirmPage struct {
	Heading string
	Lines   []string
	Action  string
	Button  string
	Danger  bool
	Back    string
}

func (c *console) deleteAliasPage(g *gin.Context) {
	k, err := c.store.GetAlias(g.Request.Context(), sessionOf(g).AccountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	c.render(g, http.StatusOK, "confirm", view{Title: "Delete alias", Nav: "keys", Data: confirmPage{
		Heading: "Delete alias “" + k.Name + "”?",
		Lines: []string{"Sites using the key ••••" + k.Hint + " are refused at once.",
			"This cannot be undone: the key can never be used again. Deactivate it instead if you may need it back."},
		Action: Base + "aliases/" + k.ID + "/delete", Button: "Delete alias", Danger: true, Back: Base + "keys"}})
}

// deleteAlias is the console's DELETE /v1/aliases/{id}.
func (c *console) deleteAlias(g *gin.Context) {
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	k, err := c.store.GetAlias(ctx, accountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	if err := c.store.DeleteAlias(ctx, actor(g), accountID, k.ID); err != nil {
		c.fail(g, err)
		return
	}
	c.redirect(g, "keys", flash{notice: "Alias “" + k.Name + "” deleted."})
}

type resetPage struct {
	Primary aliasRow
	Grace   any
	Error   string
}

func (c *console) resetPage(g *gin.Context) {
	primary, _, err := c.keys(g, sessionOf(g).AccountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	c.render(g, http.StatusOK, "reset", view{Title: "Reset primary key", Nav: "keys", Data: resetPage{Primary: primary, Grace: graceChoices}})
}

// resetKey is the console's POST /v1/account/reset-key. It ends this and
// every other session of the account (they were opened with the old key),
// so it opens a new one for the new key and shows the key there.
func (c *console) resetKey(g *gin.Context) {
	ctx := g.Request.Context()
	grace, err := store.GracePeriod.Parse(g.PostForm("grace_period"))
	if err != nil {
		primary, _, kerr := c.keys(g, sessionOf(g).AccountID)
		if kerr != nil {
			c.fail(g, kerr)
			return
		}
		c.render(g, http.StatusBadRequest, "reset", view{Title: "Reset primary key", Nav: "keys", Data: resetPage{
			Primary: primary, Grace: graceChoices, Error: "Grace period " + err.Error() + "."}})
		return
	}
	s := sessionOf(g)
	reset, err := c.store.ResetPrimaryKey(ctx, actor(g), s.AccountID, grace)
	if err != nil {
		c.fail(g, err)
		return
	}
	token, err := c.store.CreateSession(ctx, s.AccountID, reset.Key.ID)
	if err != nil {
		c.fail(g, err)
		return
	}
	c.setCookie(g, token)
	old := "The old key ••••" + reset.Previous.Hint + " stopped working."
	if grace > 0 {
		old = "The old key ••••" + reset.Previous.Hint + " works until " + stamp(reset.Previous.ValidUntil) + " UTC."
	}
	c.flashes.put(token, flash{notice: "Primary key reset. " + old, shown: &shownKey{
		Label: "New primary key", Secret: reset.Secret,
		Note: "Copy it now: this is the only time keyd shows it. Sign in with it from now on; other console sessions have ended."}})
	g.Redirect(http.StatusSeeOther, Base+"keys")
}

// revokeGrace is the console's POST /v1/keys/{id}/revoke: ends a reset
// key's grace period now, for an owner who fears the old key leaked.
func (c *console) revokeGrace(g *gin.Context) {
	k, err := c.store.RevokeGrace(g.Request.Context(), actor(g), sessionOf(g).AccountID, g.Param("id"))
	if err != nil {
		c.fail(g, err)
		return
	}
	c.redirect(g, "keys", flash{notice: "The old key ••••" + k.Hint + " stopped working now."})
}
