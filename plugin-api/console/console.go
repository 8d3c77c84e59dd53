// Package console is the owner console: the web pages at /console/ where an
// account owner manages the account's key and aliases. Pages are rendered on
// the server with html/template; templates, CSS and the little JavaScript
// are embedded. It works without JavaScript; the script only adds copy
// buttons and dialogs.
//
// Every action calls the same store operation as its twin in the HTTP API
// (same rules, same audit rows, same webhooks, same immediate effect on
// validation); the console only turns forms into those calls and errors
// into messages next to the fields.
package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Store is what the console needs from keyd's store: the operations the
// owner API's handlers call, and sessions.
type Store interface {
	LookupKey(hash [32]byte) (store.KeyView, bool)

	CreateSession(ctx context.Context, accountID, keyID string) (string, error)
	Session(ctx context.Context, token string) (store.Session, error)
	EndSession(ctx context.Context, token string) error
	SignInLinkAccount(ctx context.Context, token string) (string, error)
	UseSignInLink(ctx context.Context, token string) (store.Session, string, error)

	GetAccount(ctx context.Context, id string) (store.Account, error)
	GetPlan(ctx context.Context, name string) (store.Plan, error)
	AliasSlots(ctx context.Context, accountID string) (store.AliasUsage, error)
	ResetPrimaryKey(ctx context.Context, actor store.Actor, accountID string, grace time.Duration) (store.Reset, error)
	ListPrimaryKeys(ctx context.Context, accountID string) ([]store.Key, error)
	CreateAlias(ctx context.Context, actor store.Actor, accountID string, in store.NewAlias) (store.Created, error)
	UpdateAlias(ctx context.Context, actor store.Actor, accountID, id string, p store.AliasPatch) (store.Key, error)
	SetAliasStatus(ctx context.Context, actor store.Actor, accountID, id string, active bool) (store.Key, error)
	DeleteAlias(ctx context.Context, actor store.Actor, accountID, id string) error
	ListAliases(ctx context.Context, accountID, status, before string, limit int) ([]store.Key, error)
	GetAlias(ctx context.Context, accountID, id string) (store.Key, error)
	ListExpiringAliases(ctx context.Context, accountID string, until time.Time, limit int) ([]store.Key, error)
	GetCreditInfo(ctx context.Context, id string) (store.CreditInfo, error)
	SubaccountSlots(ctx context.Context, accountID string) (store.SubaccountUsage, error)
	ListSubaccounts(ctx context.Context, parentID, before string, limit int) ([]store.Subaccount, error)
	CreateSubaccount(ctx context.Context, actor store.Actor, parentID string, in store.NewAccount) (store.Created, error)
	AllocateCredits(ctx context.Context, actor store.Actor, parentID, subID string, amount int64) (store.Account, error)
	SuspendSubaccount(ctx context.Context, actor store.Actor, parentID, subID string, suspend bool) (store.Subaccount, error)
	RevokeGrace(ctx context.Context, actor store.Actor, accountID, keyID string) (store.Key, error)
	PatchPrimaryKey(ctx context.Context, actor store.Actor, accountID, id string, p store.PrimaryPatch) (store.Key, error)
	ReleaseSite(ctx context.Context, actor store.Actor, accountID, keyID, host string) (store.SiteSlots, error)
	ListUsage(ctx context.Context, accountID, from, to, keyID string) ([]store.UsageRow, error)
	ListKeySites(ctx context.Context, accountID, keyID string) ([]store.SiteSeen, error)
	ListAuditOfKey(ctx context.Context, accountID, keyID, before string, limit int) ([]store.AuditEntry, error)

	CreateWebhook(ctx context.Context, actor store.Actor, accountID string, in store.NewWebhook) (store.Webhook, error)
	ListWebhooks(ctx context.Context, accountID string) ([]store.Webhook, error)
	GetWebhook(ctx context.Context, accountID, id string) (store.Webhook, error)
	UpdateWebhook(ctx context.Context, actor store.Actor, accountID, id string, p store.WebhookPatch) (store.Webhook, error)
	DeleteWebhook(ctx context.Context, actor store.Actor, accountID, id string) error
	RotateWebhookSecret(ctx context.Context, actor store.Actor, accountID, id, secret string, overlap time.Duration) (store.Webhook, error)
	SendTestMessage(ctx context.Context, actor store.Actor, accountID, id string) (store.WebhookMessage, error)
	ListMessages(ctx context.Context, accountID, webhookID, status, before string, limit int) ([]store.WebhookMessage, error)
	ResendMessage(ctx context.Context, accountID, id string) (store.WebhookMessage, error)
}

// Problem is an error as the HTTP contract words it: the status, the
// message, and per-field messages.
type Problem struct {
	Status  int
	Message string
	Fields  map[string]string
}

// Config is what the console is built from.
type Config struct {
	Store Store
	// Explain words an error as the API would answer it (one mapping for
	// both); an unknown error is a 500 whose detail goes to the log only.
	Explain func(error) Problem
	// UsageRange applies the API's rules to a usage report's from and to.
	UsageRange func(from, to string) (time.Time, time.Time, error)
	// CheckSubaccount applies the API's field rules for a new subaccount
	// (name, email, credits); its error goes through Explain.
	CheckSubaccount func(name, email string, credits int64) error
	// Scopes is the operator's catalogue, offered as checkboxes.
	Scopes store.Catalogue
	Now    func() time.Time
	Logger *slog.Logger
	// AllowPrivateWebhooks accepts webhook URLs on private addresses, as
	// the API does with the same setting.
	AllowPrivateWebhooks bool
	// TrustedProxies may say, with X-Forwarded-Proto, that a request came
	// over HTTPS, which makes the session cookie Secure.
	TrustedProxies []string
}

// Base is where the console is mounted.
const Base = "/console/"

const (
	cookieName = "keyd_console"
	// formField carries the per-session form token in every form.
	formField = "form_token"
	// pageSize is the rows of a table page.
	pageSize = 50
)

type console struct {
	store                Store
	explain              func(error) Problem
	scopes               store.Catalogue
	now                  func() time.Time
	log                  *slog.Logger
	proxies              []netip.Prefix
	pages                map[string]*pageTemplate
	origins              *http.CrossOriginProtection
	signIns              *attemptLimiter
	flashes              *flashes
	allowPrivateWebhooks bool
	checkSubaccount      func(name, email string, credits int64) error
	usageRange           func(from, to string) (time.Time, time.Time, error)
}

// Mount adds the console's routes under g, which is mounted at Base. The
// handler it returns answers requests under Base that match no route (as
// the console does: an HTML page with its headers) with the given status.
func Mount(g *gin.RouterGroup, cfg Config) (func(g *gin.Context, status int), error) {
	c := &console{store: cfg.Store, explain: cfg.Explain, scopes: cfg.Scopes, now: cfg.Now, log: cfg.Logger,
		origins: http.NewCrossOriginProtection(), allowPrivateWebhooks: cfg.AllowPrivateWebhooks,
		checkSubaccount: cfg.CheckSubaccount, usageRange: cfg.UsageRange}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range cfg.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, err
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.proxies = append(c.proxies, prefix)
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.signIns = newAttemptLimiter(c.now, signInAttempts, signInWindow)
	c.flashes = newFlashes(c.now)

	g.Use(c.headers)
	g.GET("/static/*file", c.static)
	g.GET("/", c.home)
	g.GET("/sign-in", c.signInPage)
	g.POST("/sign-in", c.crossOrigin, c.signIn)
	g.GET("/sign-in/link", c.linkPage)
	g.POST("/sign-in/link", c.crossOrigin, c.useLink)

	owner := g.Group("", c.requireSession)
	owner.POST("/sign-out", c.checkForm, c.signOut)
	owner.GET("/overview", c.overviewPage)
	owner.GET("/audit", c.auditPage)
	owner.GET("/keys", c.keysPage)
	owner.GET("/keys/reset", c.resetPage)
	owner.POST("/keys/reset", c.checkForm, c.resetKey)
	owner.POST("/keys/:id/revoke", c.checkForm, c.revokeGrace)
	owner.POST("/keys/:id/limits", c.checkForm, c.setPrimaryLimits)
	owner.POST("/keys/:id/sites/release", c.checkForm, c.releaseSite)
	owner.POST("/aliases", c.checkForm, c.createAlias)
	owner.GET("/aliases/:id/edit", c.editAliasPage)
	owner.POST("/aliases/:id", c.checkForm, c.updateAlias)
	owner.POST("/aliases/:id/deactivate", c.checkForm, c.setAliasStatus(false))
	owner.POST("/aliases/:id/reactivate", c.checkForm, c.setAliasStatus(true))
	owner.GET("/aliases/:id/delete", c.deleteAliasPage)
	owner.POST("/aliases/:id/delete", c.checkForm, c.deleteAlias)
	owner.GET("/usage", c.usagePage)
	owner.GET("/usage.csv", c.usageCSV)
	owner.GET("/subaccounts", c.subaccountsPage)
	owner.POST("/subaccounts", c.checkForm, c.createSubaccount)
	owner.POST("/subaccounts/:id/credits", c.checkForm, c.allocateCredits)
	owner.POST("/subaccounts/:id/suspend", c.checkForm, c.suspendSubaccount(true))
	owner.POST("/subaccounts/:id/unsuspend", c.checkForm, c.suspendSubaccount(false))
	owner.GET("/webhooks", c.webhooksPage)
	owner.POST("/webhooks", c.checkForm, c.createWebhook)
	owner.GET("/webhooks/:id", c.webhookPage)
	owner.POST("/webhooks/:id/enable", c.checkForm, c.setWebhookEnabled(true))
	owner.POST("/webhooks/:id/disable", c.checkForm, c.setWebhookEnabled(false))
	owner.POST("/webhooks/:id/test", c.checkForm, c.testWebhook)
	owner.POST("/webhooks/:id/rotate-secret", c.checkForm, c.rotateWebhookSecret)
	owner.GET("/webhooks/:id/delete", c.deleteWebhookPage)
	owner.POST("/webhooks/:id/delete", c.checkForm, c.deleteWebhook)
	owner.POST("/messages/:id/resend", c.checkForm, c.resendMessage)
	return c.fallback, nil
}

// fallback answers a console path that has no route (404) or not for this
// method (405).
func (c *console) fallback(g *gin.Context, status int) {
	setHeaders(g.Writer.Header())
	if status == http.StatusMethodNotAllowed {
		c.renderError(g, status, "Not allowed", "This page does not take "+g.Request.Method+" requests.")
		return
	}
	c.notFound(g)
}

// headers go on every console answer: a strict policy (no inline script
// or style, no framing, forms post only here), and nothing cached.
func (c *console) headers(g *gin.Context) {
	setHeaders(g.Writer.Header())
	g.Next()
}

func setHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
}

func (c *console) static(g *gin.Context) {
	name := strings.TrimPrefix(g.Param("file"), "/")
	var ctype string
	switch {
	case strings.HasSuffix(name, ".css"):
		ctype = "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		ctype = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".svg"):
		ctype = "image/svg+xml"
	}
	body, err := staticFiles.ReadFile("static/" + name)
	if ctype == "" || err != nil || strings.Contains(name, "..") {
		c.notFound(g)
		return
	}
	g.Data(http.StatusOK, ctype, body)
}

// session is the signed-in owner of a request.
type session struct {
	store.Session
	token string
}

const ctxSession = "keyd.console.session"

func sessionOf(g *gin.Context) session { return g.MustGet(ctxSession).(session) }

// actor is the owner acting through the console: the primary key the
// session was opened with, on the console channel.
func actor(g *gin.Context) store.Actor {
	s := sessionOf(g)
	return store.Actor{Type: store.ActorPrimary, KeyID: s.KeyID, IP: g.ClientIP(), Channel: store.ChannelConsole}
}

// requireSession lets signed-in owners through; others are sent to the
// sign-in page (a GET), or refused (anything else).
func (c *console) requireSession(g *gin.Context) {
	token, _ := g.Cookie(cookieName)
	s, err := c.store.Session(g.Request.Context(), token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if token != "" {
			c.clearCookie(g)
		}
		if g.Request.Method == http.MethodGet {
			g.Redirect(http.StatusSeeOther, Base+"sign-in")
			g.Abort()
			return
		}
		c.renderError(g, http.StatusUnauthorized, "Your session has ended", "Sign in again with the account's primary key.")
		return
	case err != nil:
		c.fail(g, err)
		return
	}
	g.Set(ctxSession, session{Session: s, token: token})
	g.Next()
}

// crossOrigin refuses state-changing requests that a browser says come
// from another site (Sec-Fetch-Site, or an Origin that is not this host).
func (c *console) crossOrigin(g *gin.Context) {
	if err := c.origins.Check(g.Request); err != nil {
		c.renderError(g, http.StatusForbidden, "Request refused", "This form was sent from another site. Open the console and try again.")
		return
	}
	g.Next()
}

// checkForm is crossOrigin plus the session's form token, which a page of
// another site cannot know.
func (c *console) checkForm(g *gin.Context) {
	if err := c.origins.Check(g.Request); err != nil {
		c.renderError(g, http.StatusForbidden, "Request refused", "This form was sent from another site. Open the console and try again.")
		return
	}
	want := formToken(sessionOf(g).token)
	got := g.PostForm(formField)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		c.renderError(g, http.StatusForbidden, "Request refused", "The form has expired or did not come from this console. Reload the page and try again.")
		return
	}
	g.Next()
}

// formToken is the per-session token in every form: derived from the
// session's token, which only the owner's browser holds.
func formToken(sessionToken string) string {
	sum := sha256.Sum256([]byte("keyd console form\x00" + sessionToken))
	return hex.EncodeToString(sum[:16])
}

// secure reports whether the request came over HTTPS, directly or through
// a trusted proxy that says so.
func (c *console) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range c.proxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

func (c *console) setCookie(g *gin.Context, token string) {
	http.SetCookie(g.Writer, &http.Cookie{Name: cookieName, Value: token, Path: Base, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: c.secure(g.Request), MaxAge: int(store.SessionMaxAge / time.Second)})
}

func (c *console) clearCookie(g *gin.Context) {
	http.SetCookie(g.Writer, &http.Cookie{Name: cookieName, Value: "", Path: Base, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: c.secure(g.Request), MaxAge: -1})
}

// home is /console/: the overview for a signed-in owner, otherwise the
// sign-in page.
func (c *console) home(g *gin.Context) {
	token, _ := g.Cookie(cookieName)
	if _, err := c.store.Session(g.Request.Context(), token); err == nil {
		g.Redirect(http.StatusSeeOther, Base+"overview")
		return
	}
	g.Redirect(http.StatusSeeOther, Base+"sign-in")
}

// fail answers an error of the store: the contract's words for what the
// owner can act on, a plain 500 page for the rest.
func (c *console) fail(g *gin.Context, err error) {
	p := c.explain(err)
	if p.Status >= 500 {
		c.log.LogAttrs(g.Request.Context(), slog.LevelError, "console", slog.String("path", g.Request.URL.Path), slog.String("error", err.Error()))
	}
	if p.Status == http.StatusNotFound {
		c.notFound(g)
		return
	}
	title := "Something went wrong"
	if p.Status < 500 {
		title = "That did not work"
	}
	c.renderError(g, p.Status, title, capitalise(p.Message))
}

func (c *console) notFound(g *gin.Context) {
	c.renderError(g, http.StatusNotFound, "Not found", "There is nothing here, or it belongs to another account.")
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
