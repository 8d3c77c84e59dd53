package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// limitForm is a key's limits as the owner filled them in: spend_limit
// (units and period), max_sites and release_after. An empty field is no
// limit.
type limitForm struct {
	SpendLimit   string
	SpendPeriod  string // day, month or total
	MaxSites     string
	ReleaseAfter string // in the duration grammar, e.g. "30d"
}

// spendPeriods are the periods the form offers, as the API names them.
var spendPeriods = []struct{ Value, Label string }{
	{store.PeriodDay, "a day"}, {store.PeriodMonth, "a month"}, {store.PeriodTotal, "in total"},
}

// Limits is the limits part of the alias form, for the "limitfields"
// template.
func (f aliasForm) Limits() limitForm { return f.limitForm }

func readLimitForm(g *gin.Context) limitForm {
	return limitForm{
		SpendLimit:   strings.TrimSpace(g.PostForm("spend_limit")),
		SpendPeriod:  g.PostForm("spend_period"),
		MaxSites:     strings.TrimSpace(g.PostForm("max_sites")),
		ReleaseAfter: strings.TrimSpace(g.PostForm("release_after")),
	}
}

// limitFormOf is a key's limits as the edit forms show them.
func limitFormOf(k store.Key) limitForm {
	f := limitForm{SpendPeriod: store.PeriodMonth}
	if k.SpendLimit != nil {
		f.SpendLimit, f.SpendPeriod = strconv.FormatInt(k.SpendLimit.Limit, 10), k.SpendLimit.Period
	}
	if k.MaxSites != nil {
		f.MaxSites = strconv.Itoa(*k.MaxSites)
	}
	if k.ReleaseAfter != nil {
		f.ReleaseAfter = store.FormatDuration(*k.ReleaseAfter)
	}
	return f
}

// patch turns the form into the limits the API's spend_limit, max_sites
// and release_after would set, every one of them (an empty field removes
// the limit). The bounds are the store's: a number the form cannot read
// goes to the store as 0, which it refuses in its own words; release_after
// is read by the API's rule (store.ReleaseAfter).
func (f limitForm) patch() (store.LimitsPatch, map[string]string) {
	p := store.LimitsPatch{SetSpendLimit: true, SetMaxSites: true, SetReleaseAfter: true}
	if f.SpendLimit != "" {
		n, err := strconv.ParseInt(f.SpendLimit, 10, 64)
		if err != nil {
			n = 0
		}
		p.SpendLimit = &store.SpendLimit{Limit: n, Period: f.SpendPeriod}
	}
	if f.MaxSites != "" {
		n, err := strconv.Atoi(f.MaxSites)
		if err != nil {
			n = 0
		}
		p.MaxSites = &n
	}
	if f.ReleaseAfter != "" {
		d, err := store.ReleaseAfter.Parse(f.ReleaseAfter)
		if err != nil {
			return p, map[string]string{"release_after": err.Error()}
		}
		p.ReleaseAfter = &d
	}
	return p, nil
}

// The fields the limits form shows errors next to, and the alias forms.
var (
	limitFieldNames = []string{"spend_limit", "max_sites", "release_after"}
	aliasFieldNames = append([]string{"name", "expires_at", "ttl", "scopes", "allowed_sites"}, limitFieldNames...)
)

// formMessage is a problem's message for the top of a form: none when the
// form shows every field it names next to that field, in the same words.
func formMessage(p Problem, shown []string) string {
	if len(p.Fields) == 0 {
		return capitalise(p.Message)
	}
	for f := range p.Fields {
		if !contains(shown, f) {
			return capitalise(p.Message)
		}
	}
	return ""
}

// limitFieldsView is what the "limitfields" template gets: ids start with
// Prefix, so that two forms on one page keep them unique.
type limitFieldsView struct {
	Prefix  string
	Form    limitForm
	Errors  map[string]string
	Periods any
}

func limitFields(prefix string, f limitForm, errs map[string]string) limitFieldsView {
	return limitFieldsView{Prefix: prefix, Form: f, Errors: errs, Periods: spendPeriods}
}

// setPrimaryLimits is the console's PATCH /v1/keys/{id} with spend_limit,
// max_sites and release_after.
func (c *console) setPrimaryLimits(g *gin.Context) {
	form := readLimitForm(g)
	limits, errs := form.patch()
	if errs != nil {
		c.showKeysWith(g, http.StatusBadRequest, keysForms{primary: form, primaryErrs: errs})
		return
	}
	k, err := c.store.PatchPrimaryKey(g.Request.Context(), actor(g), sessionOf(g).AccountID, g.Param("id"),
		store.PrimaryPatch{LimitsPatch: limits})
	if err != nil {
		if p := c.explain(err); p.Status < 500 && p.Status != http.StatusNotFound {
			c.showKeysWith(g, p.Status, keysForms{primary: form, primaryErrs: fieldErrors(p), primaryErr: formMessage(p, limitFieldNames)})
			return
		}
		c.fail(g, err)
		return
	}
	c.redirect(g, "keys", flash{notice: "Limits of the primary key ••••" + k.Hint + " saved."})
}
