package console

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// chartDays is how many days the overview's chart shows.
const chartDays = 30

type dayUsage struct {
	Day         string
	Validations int64
	Failed      int64
	Units       int64
}

// bar is one bar of a chart, in the SVG's coordinates.
type bar struct {
	X, Y, W, H float64
	Label      string
}

// chart is a bar chart drawn on the server: no script, numbers beside it.
type chart struct {
	Title  string
	Width  float64
	Height float64
	Bars   []bar
	Max    int64
	Class  string
}

const (
	chartWidth  = 600
	chartHeight = 140
)

func drawChart(title, class string, days []dayUsage, value func(dayUsage) int64) chart {
	c := chart{Title: title, Width: chartWidth, Height: chartHeight, Class: class}
	for _, d := range days {
		c.Max = max(c.Max, value(d))
	}
	step := float64(chartWidth) / float64(len(days))
	for i, d := range days {
		h := 0.0
		if c.Max > 0 {
			h = float64(value(d)) / float64(c.Max) * (chartHeight - 4)
		}
		if value(d) > 0 && h < 2 {
			h = 2 // a day with any use shows
		}
		c.Bars = append(c.Bars, bar{X: float64(i)*step + 1, Y: chartHeight - h, W: step - 2, H: h,
			Label: fmt.Sprintf("%s: %d", d.Day, value(d))})
	}
	return c
}

type overviewPage struct {
	Plan        store.Plan
	Pool        store.CreditInfo
	SubCredits  int64
	SubCount    int
	Subaccounts store.SubaccountUsage
	Aliases     store.AliasUsage
	Days        []dayUsage
	Totals      dayUsage
	Validations chart
	Units       chart
	Expiring    []aliasRow
	Audit       []store.AuditEntry
	From, To    string
}

func (c *console) overviewPage(g *gin.Context) {
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	acc, err := c.store.GetAccount(ctx, accountID)
	if err != nil {
		c.fail(g, err)
		return
	}
	p := overviewPage{}
	if p.Plan, err = c.store.GetPlan(ctx, acc.Plan); err != nil {
		c.fail(g, err)
		return
	}
	if p.Pool, err = c.store.GetCreditInfo(ctx, accountID); err != nil {
		c.fail(g, err)
		return
	}
	if p.Aliases, err = c.store.AliasSlots(ctx, accountID); err != nil {
		c.fail(g, err)
		return
	}
	if p.Subaccounts, err = c.store.SubaccountSlots(ctx, accountID); err != nil {
		c.fail(g, err)
		return
	}
	subs, err := c.store.ListSubaccounts(ctx, accountID, "", 500)
	if err != nil {
		c.fail(g, err)
		return
	}
	for _, s := range subs {
		p.SubCredits += s.Credits
	}
	p.SubCount = len(subs)

	now := c.now().UTC()
	to := now.Truncate(24 * time.Hour)
	from := to.AddDate(0, 0, -(chartDays - 1))
	p.From, p.To = from.Format(time.DateOnly), to.Format(time.DateOnly)
	rows, err := c.store.ListUsage(ctx, accountID, p.From, p.To, "")
	if err != nil {
		c.fail(g, err)
		return
	}
	byDay := map[string]*dayUsage{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		p.Days = append(p.Days, dayUsage{Day: d.Format(time.DateOnly)})
	}
	for i := range p.Days {
		byDay[p.Days[i].Day] = &p.Days[i]
	}
	for _, r := range rows {
		if d := byDay[r.Day]; d != nil {
			d.Validations += r.Validations
			d.Failed += r.FailedValidations
			d.Units += r.Units
		}
	}
	for _, d := range p.Days {
		p.Totals.Validations += d.Validations
		p.Totals.Failed += d.Failed
		p.Totals.Units += d.Units
	}
	p.Validations = drawChart("Validations a day", "bars-validations", p.Days, func(d dayUsage) int64 { return d.Validations })
	p.Units = drawChart("Units spent a day", "bars-units", p.Days, func(d dayUsage) int64 { return d.Units })

	expiring, err := c.store.ListExpiringAliases(ctx, accountID, now.Add(7*24*time.Hour), 10)
	if err != nil {
		c.fail(g, err)
		return
	}
	for _, k := range expiring {
		p.Expiring = append(p.Expiring, aliasRow{Key: k, State: k.StatusAt(now)})
	}
	if p.Audit, err = c.store.ListAuditOfKey(ctx, accountID, "", "", 8); err != nil {
		c.fail(g, err)
		return
	}
	c.render(g, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Account: acc, Data: p})
}
