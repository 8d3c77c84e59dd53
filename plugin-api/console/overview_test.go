package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"keyd/store"
)

func TestOverview(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	soon := t0.Add(3 * 24 * time.Hour)
	later := t0.Add(30 * 24 * time.Hour)
	exp, err := e.db.CreateAlias(ctx, store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Ends soon", ExpiresAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateAlias(ctx, store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Ends later", ExpiresAt: &later}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if got := e.validate(exp.Secret, "https://a.example/"); got != "VALID" {
			t.Fatal(got)
		}
	}
	e.validate("AAAAAAAAAAAAAAAAAAAA", "https://a.example/") // no such key: counted nowhere

	b := e.browser()
	p := b.signIn(e.acc.Secret)
	if p.status != http.StatusOK {
		t.Fatalf("overview: %d", p.status)
	}
	mustContain(t, p, "plan <strong>pro</strong>", `<p class="big">100</p>`, "2 <span class=\"of\">of 5</span>",
		"600 <span class=\"of\">a minute</span>",
		// The chart and its numbers: today has 3 validations.
		`<rect `, "<title>2025-03-14: 3</title>", "<th scope=\"row\">2025-03-14</th><td>3</td>",
		"3 validations (0 refused)",
		// Expiring within 7 days: only the first.
		"Ends soon", "in 3 days")
	mustLack(t, p, "Ends later")
	if strings.Count(p.body, "<rect ") != 60 {
		t.Fatalf("%d bars, want 30 days in two charts", strings.Count(p.body, "<rect "))
	}
}

func TestAuditPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a1, _ := e.db.CreateAlias(ctx, store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "One"})
	a2, _ := e.db.CreateAlias(ctx, store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Two"})
	b := e.browser()
	b.signIn(e.acc.Secret)
	b.get("/console/keys")
	// 60 changes: more than a page.
	for i := 0; i < 30; i++ {
		b.follow(b.post("/console/aliases/"+a1.Key.ID+"/deactivate", nil))
		b.follow(b.post("/console/aliases/"+a1.Key.ID+"/reactivate", nil))
	}
	b.follow(b.post("/console/aliases/"+a2.Key.ID+"/deactivate", nil))

	p := b.get("/console/audit")
	if n := strings.Count(p.body, "<td data-label=\"Event\">"); n != 50 {
		t.Fatalf("%d rows on the first page, want 50", n)
	}
	mustContain(t, p, "alias.deactivated", "Primary key in the console", "192.0.2.10", "Older")
	// Newest first: a2's deactivation leads.
	if strings.Index(p.body, a2.Key.ID) > strings.Index(p.body, a1.Key.ID) {
		t.Fatal("the newest event is not first")
	}
	next := p.body[strings.Index(p.body, "/console/audit?before="):]
	next = strings.ReplaceAll(next[:strings.Index(next, `"`)], "&amp;", "&")
	older := b.get(next)
	if n := strings.Count(older.body, "<td data-label=\"Event\">"); n != 14 {
		t.Fatalf("%d rows on the second page, want 14 (64 events in all)", n)
	}

	// Narrowed to one key.
	only := b.get("/console/audit?key=" + a2.Key.ID)
	if n := strings.Count(only.body, "<td data-label=\"Event\">"); n != 2 || strings.Contains(only.body, a1.Key.ID) {
		t.Fatalf("filtered by %s: %d rows\n%s", a2.Key.ID, n, only.body)
	}
	mustContain(t, b.get("/console/audit?key=%3Cx%3E"), `value="&lt;x&gt;"`, "No events about this key")
}
