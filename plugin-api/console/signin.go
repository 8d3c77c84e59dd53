package console

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// Sign-in attempts allowed per client address in a window: enough for an
// owner who mistypes, far too few to guess a key.
const (
	signInAttempts = 10
	signInWindow   = 15 * time.Minute
)

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

type signInForm struct {
	Error string
}

func (c *console) signInPage(g *gin.Context) {
	token, _ := g.Cookie(cookieName)
	if _, err := c.store.Session(g.Request.Context(), token); err == nil {
		g.Redirect(http.StatusSeeOther, Base+"overview")
		return
	}
	c.render(g, http.StatusOK, "signin", view{Title: "Sign in", Data: signInForm{}})
}

// signIn opens a session for the account's current primary key. The key is
// read from the form body only: never a URL, never a log line.
func (c *console) signIn(g *gin.Context) {
	if ok, retry := c.signIns.allow(g.ClientIP()); !ok {
		minutes := int((retry + time.Minute - 1) / time.Minute)
		g.Header("Retry-After", fmt.Sprint(int(retry.Seconds()+0.5)))
		c.render(g, http.StatusTooManyRequests, "signin", view{Title: "Sign in", Data: signInForm{
			Error: fmt.Sprintf("Too many sign-in attempts from your address. Try again in %s.", plural(minutes, "minute"))}})
		return
	}
	key := strings.TrimSpace(g.PostForm("key"))
	refuse := func(msg string) {
		c.render(g, http.StatusUnauthorized, "signin", view{Title: "Sign in", Data: signInForm{Error: msg}})
	}
	if !store.WellFormedKey(key) {
		refuse("A key is 20 letters and digits. Paste the account's primary key.")
		return
	}
	v, ok := c.store.LookupKey(store.HashKey(key))
	switch {
	case !ok:
		refuse("No account has this key.")
		return
	case !v.IsPrimary():
		refuse("This is an alias. Sign in with the account's primary key; aliases are for sites only.")
		return
	case v.ValidUntil != 0:
		refuse("This key was replaced by a reset. Sign in with the account's new primary key.")
		return
	}
	if err := v.Check(c.now()); err != nil {
		refuse("This key cannot sign in: " + err.Error() + ".")
		return
	}
	token, err := c.store.CreateSession(g.Request.Context(), v.AccountID, v.KeyID)
	if err != nil {
		c.fail(g, err)
		return
	}
	c.setCookie(g, token)
	g.Redirect(http.StatusSeeOther, Base+"overview")
}

func (c *console) signOut(g *gin.Context) {
	if err := c.store.EndSession(g.Request.Context(), sessionOf(g).token); err != nil {
		c.fail(g, err)
		return
	}
	c.clearCookie(g)
	g.Redirect(http.StatusSeeOther, Base+"sign-in")
}

// attemptLimiter allows so many attempts per client address in a fixed
// window. It lives in memory, which is right for one keyd node.
type attemptLimiter struct {
	now    func() time.Time
	max    int
	window time.Duration

	mu   sync.Mutex
	seen map[string]attempts
}

type attempts struct {
	n     int
	start time.Time
}

func newAttemptLimiter(now func() time.Time, max int, window time.Duration) *attemptLimiter {
	return &attemptLimiter{now: now, max: max, window: window, seen: map[string]attempts{}}
}

// allow counts an attempt from addr; when refused, retry is how long until
// the next is allowed.
func (l *attemptLimiter) allow(addr string) (ok bool, retry time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) > 10000 {
		for k, a := range l.seen {
			if now.Sub(a.start) >= l.window {
				delete(l.seen, k)
			}
		}
	}
	a := l.seen[addr]
	if now.Sub(a.start) >= l.window {
		a = attempts{start: now}
	}
	if a.n >= l.max {
		return false, a.start.Add(l.window).Sub(now)
	}
	a.n++
	l.seen[addr] = a
	return true, 0
}

// SignInLinkPath is where a one-time sign-in link points.
func SignInLinkPath(token string) string { return Base + "sign-in/link?token=" + token }

type linkPage struct {
	Token   string
	Account string
	Error   string
}

// linkPage asks before spending a one-time link: a GET changes nothing, so
// a mail scanner that follows the link does not use it up.
func (c *console) linkPage(g *gin.Context) {
	token := g.Query("token")
	accountID, err := c.store.SignInLinkAccount(g.Request.Context(), token)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.render(g, http.StatusNotFound, "link", view{Title: "Sign-in link", Data: linkPage{
				Error: "This sign-in link was used already or has expired. Ask the operator for a new one."}})
			return
		}
		c.fail(g, err)
		return
	}
	acc, err := c.store.GetAccount(g.Request.Context(), accountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	c.render(g, http.StatusOK, "link", view{Title: "Sign-in link", Data: linkPage{Token: token, Account: acc.Name}})
}

// useLink spends a one-time link and opens a session for the account's
// current primary key; the owner is sent to the keys page to reset it.
func (c *console) useLink(g *gin.Context) {
	if ok, retry := c.signIns.allow(g.ClientIP()); !ok {
		g.Header("Retry-After", fmt.Sprint(int(retry.Seconds()+0.5)))
		c.render(g, http.StatusTooManyRequests, "link", view{Title: "Sign-in link", Data: linkPage{
			Error: "Too many sign-in attempts from your address. Try again later."}})
		return
	}
	_, token, err := c.store.UseSignInLink(g.Request.Context(), g.PostForm("token"))
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrAccountSuspended):
		c.render(g, http.StatusNotFound, "link", view{Title: "Sign-in link", Data: linkPage{
			Error: "This sign-in link was used already, has expired, or its account is suspended. Ask the operator for a new one."}})
		return
	case err != nil:
		c.fail(g, err)
		return
	}
	c.setCookie(g, token)
	c.flashes.put(token, flash{notice: "Signed in with a one-time link. If the primary key was lost, reset it now: " +
		"the old key stops working and you get a new one."})
	g.Redirect(http.StatusSeeOther, Base+"keys")
}
