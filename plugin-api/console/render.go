package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// pageTemplate is the layout together with one page's blocks.
type pageTemplate struct{ t *template.Template }

var templateFuncs = template.FuncMap{
	"stamp":              stamp,
	"badge":              badgeClass,
	"status":             capitalise,
	"scopes":             describeScopes,
	"join":               strings.Join,
	"why":                disabledWhy,
	"actor":              actorText,
	"index_charts":       func(p overviewPage) []chart { return []chart{p.Validations, p.Units} },
	"index_usage_charts": func(p usagePage) []chart { return []chart{p.Validations, p.Units} },
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"short":       shortText,
	"limitfields": limitFields,
	"host":        store.SiteHost,
	// day is a midnight (UTC) as its date: a spend period resets then.
	"day": func(t *time.Time) string { return t.UTC().Format(time.DateOnly) },
	"period": func(p string) string {
		switch p {
		case store.PeriodDay:
			return "today"
		case store.PeriodMonth:
			return "this month"
		}
		return "in total"
	},
	"field": func(errs map[string]string, names ...string) string {
		for _, n := range names {
			if m, ok := errs[n]; ok {
				return m
			}
		}
		return ""
	},
	"has": func(list []string, v string) bool {
		for _, s := range list {
			if s == v {
				return true
			}
		}
		return false
	},
	"pct": func(used, limit int) int {
		if limit <= 0 {
			return 100
		}
		if used >= limit {
			return 100
		}
		return used * 100 / limit
	},
}

// parsePages parses each page with the layout; a page defines "title" and
// "content".
func parsePages() (map[string]*pageTemplate, error) {
	names, err := templateFiles.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	pages := map[string]*pageTemplate{}
	for _, f := range names {
		name := strings.TrimSuffix(f.Name(), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", "templates/"+f.Name())
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", f.Name(), err)
		}
		pages[name] = &pageTemplate{t: t}
	}
	return pages, nil
}

// view is what every page gets: the page's own data in Data.
type view struct {
	Title     string
	Nav       string // the navigation entry to mark current
	Signed    bool
	Account   store.Account
	FormToken string
	FormField string
	Notice    string
	Shown     *shownKey
	Now       time.Time
	Data      any
}

// Rel says how far t is from now, in words: "in 6 days", "3 hours ago".
func (v *view) Rel(t any) string {
	at, ok := timeOf(t)
	if !ok {
		return ""
	}
	d := at.Sub(v.Now)
	future := d > 0
	if !future {
		d = -d
	}
	// Rounded to the nearest unit: an alias made for 7 days a moment ago
	// still has "7 days" left, not "6 days".
	in := func(unit time.Duration) int { return int((d + unit/2) / unit) }
	var amount string
	switch {
	case d < 30*time.Second:
		return "just now"
	case d < 59*time.Minute+30*time.Second:
		amount = plural(in(time.Minute), "minute")
	case d < 47*time.Hour+30*time.Minute:
		amount = plural(in(time.Hour), "hour")
	case d < 60*24*time.Hour:
		amount = plural(in(24*time.Hour), "day")
	case d < 730*24*time.Hour:
		amount = plural(in(30*24*time.Hour), "month")
	default:
		amount = plural(in(365*24*time.Hour), "year")
	}
	if future {
		return "in " + amount
	}
	return amount + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func timeOf(t any) (time.Time, bool) {
	switch v := t.(type) {
	case time.Time:
		return v, !v.IsZero()
	case *time.Time:
		if v == nil {
			return time.Time{}, false
		}
		return *v, true
	case store.EventTime:
		return time.Time(v), true
	}
	return time.Time{}, false
}

// stamp is a time as the console shows it: YYYY-MM-DD HH:MM:SS in UTC.
func stamp(t any) string {
	at, ok := timeOf(t)
	if !ok {
		return ""
	}
	return at.UTC().Format(time.DateTime)
}

func badgeClass(status string) string {
	switch status {
	case store.KeyActive:
		return "badge badge-ok"
	case store.KeyRevoked:
		return "badge badge-bad"
	case store.KeyExpired:
		return "badge badge-warn"
	}
	return "badge badge-off"
}

// disabledWhy says why a webhook endpoint is disabled.
func disabledWhy(reason *string) string {
	if reason == nil {
		return "Disabled"
	}
	switch *reason {
	case store.DisabledByOwner:
		return "Disabled by you"
	case store.DisabledGone:
		return "Disabled: the receiver answered 410 Gone"
	case store.DisabledFailing:
		return "Disabled: no successful delivery for too long"
	}
	return "Disabled"
}

// shortText is the start of a receiver's answer, on one line.
func shortText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 80 {
		return string(r[:80]) + "…"
	}
	return s
}

// describeScopes says in words what a key's scope rules allow.
func describeScopes(rules []string) string {
	var allow, deny []string
	all := false
	for _, r := range rules {
		switch {
		case r == "*":
			all = true
		case strings.HasPrefix(r, "!"):
			deny = append(deny, r[1:])
		default:
			allow = append(allow, r)
		}
	}
	var out string
	switch {
	case all:
		out = "All scopes"
	case len(allow) == 0:
		out = "No scopes"
	default:
		out = strings.Join(allow, ", ")
	}
	if len(deny) > 0 {
		out += " except " + strings.Join(deny, ", ")
	}
	return out
}

// render writes a page; page data goes in v.Data. The page is rendered into
// a buffer first so that a template error is a clean 500.
func (c *console) render(g *gin.Context, status int, page string, v view) {
	v.Now = c.now()
	v.FormField = formField
	if s, ok := g.Get(ctxSession); ok {
		sess := s.(session)
		v.Signed = true
		v.FormToken = formToken(sess.token)
		if v.Account.ID == "" {
			acc, err := c.store.GetAccount(g.Request.Context(), sess.AccountID)
			if err != nil {
				c.fail(g, err)
				return
			}
			v.Account = acc
		}
		if f, ok := c.flashes.take(sess.token); ok {
			v.Notice, v.Shown = f.notice, f.shown
		}
	}
	var buf bytes.Buffer
	if err := c.pages[page].t.Execute(&buf, &v); err != nil {
		c.log.Error("console template", "page", page, "error", err.Error())
		g.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error"))
		g.Abort()
		return
	}
	g.Data(status, "text/html; charset=utf-8", buf.Bytes())
	g.Abort()
}

type errorPage struct{ Message string }

func (c *console) renderError(g *gin.Context, status int, title, message string) {
	c.render(g, status, "error", view{Title: title, Data: errorPage{Message: message}})
}

// A flash is what the next page shows once: a notice, and a new key's
// secret. It is kept in memory by session for a few minutes so that the
// secret never travels in a URL and a reload does not show it again.
type flash struct {
	notice string
	shown  *shownKey
	until  time.Time
}

// shownKey is a key shown once.
type shownKey struct {
	Label  string
	Secret string
	Note   string
}

const flashLife = 5 * time.Minute

type flashes struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[[32]byte]flash
}

func newFlashes(now func() time.Time) *flashes {
	return &flashes{now: now, m: map[[32]byte]flash{}}
}

func (f *flashes) put(sessionToken string, fl flash) {
	now := f.now()
	fl.until = now.Add(flashLife)
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range f.m {
		if now.After(v.until) {
			delete(f.m, k)
		}
	}
	f.m[flashKey(sessionToken)] = fl
}

func (f *flashes) take(sessionToken string) (flash, bool) {
	k := flashKey(sessionToken)
	f.mu.Lock()
	defer f.mu.Unlock()
	fl, ok := f.m[k]
	delete(f.m, k)
	if !ok || f.now().After(fl.until) {
		return flash{}, false
	}
	return fl, true
}

func flashKey(token string) [32]byte { return sha256Sum("keyd console flash\x00" + token) }

// redirect sends the browser to a console page after an action (POST,
// redirect, GET), with a notice for that page.
func (c *console) redirect(g *gin.Context, path string, fl flash) {
	if fl.notice != "" || fl.shown != nil {
		c.flashes.put(sessionOf(g).token, fl)
	}
	g.Redirect(http.StatusSeeOther, Base+path)
	g.Abort()
}
