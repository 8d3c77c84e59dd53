package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"keyd/store"
)

func TestSitesAndUsage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alias, _ := e.db.CreateAlias(ctx, store.SystemActor, e.acc.Account.ID, store.NewAlias{Name: "Shop"})
	for _, site := range []string{"https://shop.example/", "https://shop.example/", "https://blog.example/"} {
		body, _ := json.Marshal(map[string]string{"key": alias.Secret, "site": site, "plugin": "img<opt>", "plugin_version": "2.1", "wp_version": "6.5"})
		req := httptest.NewRequest(http.MethodPost, "/v1/validate", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("validate: %d %s", w.Code, w.Body.String())
		}
	}
	if err := e.db.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}

	b := e.browser()
	b.signIn(e.acc.Secret)
	p := b.get("/console/usage")
	if p.status != http.StatusOK {
		t.Fatalf("usage: %d", p.status)
	}
	mustContain(t, p, "2025-02-13 to 2025-03-14", "3 validations (0 refused)", "<strong>Shop ••••"+alias.Key.Hint+"</strong><br><code class=\"muted\">"+alias.Key.ID+"</code>",
		"<th scope=\"row\">2025-03-14</th><td>3</td>", `href="/console/usage.csv?from=2025-02-13&amp;to=2025-03-14"`)

	one := b.get("/console/usage?key=" + alias.Key.ID)
	mustContain(t, one, "Sites that used this key", "shop.example", "blog.example", "img&lt;opt&gt; 2.1", "6.5")
	mustLack(t, one, "img<opt>")

	csv := b.get("/console/usage.csv?from=2025-03-01&to=2025-03-14")
	if csv.status != http.StatusOK || !strings.HasPrefix(csv.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(csv.header.Get("Content-Disposition"), `filename="keyd-usage-2025-03-01-to-2025-03-14.csv"`) {
		t.Fatalf("CSV: %d %v", csv.status, csv.header)
	}
	if want := "day,key_id,validations,failed_validations,units\n2025-03-14," + alias.Key.ID + ",3,0,0\n"; csv.body != want {
		t.Fatalf("CSV body:\n%s\nwant:\n%s", csv.body, want)
	}

	// The API's range rules and words.
	bad := b.get("/console/usage?from=2025-03-10&to=2025-03-01")
	if bad.status != http.StatusBadRequest {
		t.Fatalf("reversed range: %d", bad.status)
	}
	mustContain(t, bad, "To: must not be before from")
	if p := b.get("/console/usage.csv?from=2024-01-01&to=2025-03-01"); p.status != http.StatusBadRequest {
		t.Fatalf("CSV over 366 days: %d", p.status)
	}

	// Another account's key: not found.
	other := e.account("Other")
	ob := e.browser()
	ob.signIn(other.Secret)
	if p := ob.get("/console/usage?key=" + alias.Key.ID); p.status != http.StatusNotFound {
		t.Fatalf("another account's key: %d", p.status)
	}
}
