package console

import (
	"bytes"
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

type keyUsage struct {
	KeyID       string
	Name        string // the key's name, "" when it is gone
	Validations int64
	Failed      int64
	Units       int64
}

type usagePage struct {
	From, To    string
	Key         string
	Error       string
	Days        []dayUsage
	Totals      dayUsage
	Validations chart
	Units       chart
	Keys        []keyUsage
	Sites       []store.SiteSeen
	// Slots is how many sites hold a slot of the key shown, and its
	// max_sites; nil for a key without max_sites.
	Slots        *store.SiteSlots
	ReleaseAfter string
	CSV          string
}

// usage reads the usage report the page and its CSV show: the API's range
// rules (Config.UsageRange) and the same store query as GET /v1/usage.
func (c *console) usage(g *gin.Context) (usagePage, []store.UsageRow, error) {
	p := usagePage{Key: strings.TrimSpace(g.Query("key"))}
	from, to, err := c.usageRange(g.Query("from"), g.Query("to"))
	if err != nil {
		return p, nil, err
	}
	p.From, p.To = from.Format(time.DateOnly), to.Format(time.DateOnly)
	rows, err := c.store.ListUsage(g.Request.Context(), sessionOf(g).AccountID, p.From, p.To, p.Key)
	return p, rows, err
}

func (c *console) usagePage(g *gin.Context) {
	p, rows, err := c.usage(g)
	if err != nil {
		if prob := c.explain(err); prob.Status == http.StatusBadRequest {
			p.Error = capitalise(prob.Message)
			c.render(g, http.StatusBadRequest, "usage", view{Title: "Sites and usage", Nav: "usage", Data: p})
			return
		}
		c.fail(g, err)
		return
	}
	if p.Key != "" {
		if p.Sites, err = c.store.ListKeySites(g.Request.Context(), sessionOf(g).AccountID, p.Key); err != nil {
			c.fail(g, err)
			return
		}
		k, err := c.key(g, p.Key)
		if err != nil {
			c.fail(g, err)
			return
		}
		if k.MaxSites != nil {
			p.Slots = &store.SiteSlots{Limit: *k.MaxSites}
			for _, s := range p.Sites {
				if s.HoldsSlot {
					p.Slots.Used++
				}
			}
			p.ReleaseAfter = row(k, c.now()).ReleaseAfter
		}
	}
	from, _ := time.Parse(time.DateOnly, p.From)
	to, _ := time.Parse(time.DateOnly, p.To)
	byDay := map[string]int{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		byDay[d.Format(time.DateOnly)] = len(p.Days)
		p.Days = append(p.Days, dayUsage{Day: d.Format(time.DateOnly)})
	}
	byKey := map[string]*keyUsage{}
	for _, r := range rows {
		if i, ok := byDay[r.Day]; ok {
			p.Days[i].Validations += r.Validations
			p.Days[i].Failed += r.FailedValidations
			p.Days[i].Units += r.Units
		}
		k := byKey[r.KeyID]
		if k == nil {
			k = &keyUsage{KeyID: r.KeyID}
			byKey[r.KeyID] = k
		}
		k.Validations += r.Validations
		k.Failed += r.FailedValidations
		k.Units += r.Units
	}
	for _, d := range p.Days {
		p.Totals.Validations += d.Validations
		p.Totals.Failed += d.Failed
		p.Totals.Units += d.Units
	}
	for _, k := range byKey {
		p.Keys = append(p.Keys, *k)
	}
	sort.Slice(p.Keys, func(i, j int) bool {
		if p.Keys[i].Validations != p.Keys[j].Validations {
			return p.Keys[i].Validations > p.Keys[j].Validations
		}
		return p.Keys[i].KeyID < p.Keys[j].KeyID
	})
	if len(p.Keys) > pageSize {
		p.Keys = p.Keys[:pageSize]
	}
	if err := c.nameKeys(g, p.Keys); err != nil {
		c.fail(g, err)
		return
	}
	p.Validations = drawChart("Validations a day", "bars-validations", p.Days, func(d dayUsage) int64 { return d.Validations })
	p.Units = drawChart("Units spent a day", "bars-units", p.Days, func(d dayUsage) int64 { return d.Units })
	q := "from=" + p.From + "&to=" + p.To
	if p.Key != "" {
		q += "&key=" + p.Key
	}
	p.CSV = Base + "usage.csv?" + q
	c.render(g, http.StatusOK, "usage", view{Title: "Sites and usage", Nav: "usage", Data: p})
}

// releaseSite is the console's DELETE /v1/keys/{id}/sites/{host}: the
// owner frees the slot a site holds (site.released).
func (c *console) releaseSite(g *gin.Context) {
	id, host := g.Param("id"), g.PostForm("host")
	if _, err := c.store.ReleaseSite(g.Request.Context(), actor(g), sessionOf(g).AccountID, id, host); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.renderError(g, http.StatusNotFound, "Not found", "No such key, or this site holds none of its slots.")
			return
		}
		c.fail(g, err)
		return
	}
	c.redirect(g, "usage?key="+url.QueryEscape(id), flash{notice: "The slot of " + store.CanonicalHost(host) + " is free: another site may take it."})
}

// key is one key of the account, primary or alias.
func (c *console) key(g *gin.Context, id string) (store.Key, error) {
	accountID := sessionOf(g).AccountID
	primaries, err := c.store.ListPrimaryKeys(g.Request.Context(), accountID)
	if err != nil {
		return store.Key{}, err
	}
	for _, k := range primaries {
		if k.ID == id {
			return k, nil
		}
	}
	return c.store.GetAlias(g.Request.Context(), accountID, id)
}

// nameKeys fills in the names of the keys of one table page.
func (c *console) nameKeys(g *gin.Context, keys []keyUsage) error {
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	primaries, err := c.store.ListPrimaryKeys(ctx, accountID)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, k := range primaries {
		names[k.ID] = k.Name + " ••••" + k.Hint
	}
	for i := range keys {
		if n, ok := names[keys[i].KeyID]; ok {
			keys[i].Name = n
			continue
		}
		a, err := c.store.GetAlias(ctx, accountID, keys[i].KeyID)
		switch {
		case err == nil:
			keys[i].Name = a.Name + " ••••" + a.Hint
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	return nil
}

// usageCSV is the same report as a CSV download: one line per key and day.
func (c *console) usageCSV(g *gin.Context) {
	p, rows, err := c.usage(g)
	if err != nil {
		if prob := c.explain(err); prob.Status == http.StatusBadRequest {
			c.renderError(g, http.StatusBadRequest, "That did not work", capitalise(prob.Message))
			return
		}
		c.fail(g, err)
		return
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"day", "key_id", "validations", "failed_validations", "units"})
	for _, r := range rows {
		w.Write([]string{r.Day, r.KeyID, strconv.FormatInt(r.Validations, 10), strconv.FormatInt(r.FailedValidations, 10), strconv.FormatInt(r.Units, 10)})
	}
	w.Flush()
	g.Header("Content-Disposition", `attachment; filename="keyd-usage-`+p.From+`-to-`+p.To+`.csv"`)
	g.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}
