package pluginapi

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"keyd/store"
)

// TestMetricsAddNoAllocations checks that counting a validation (route and
// status, latency, outcome) allocates nothing on top of the request itself:
// every counter is resolved before or at its first use.
func TestMetricsAddNoAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters change allocation counts")
	}
	db, err := store.Open(t.Context(), t.TempDir()+"/m.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	acc, err := db.CreateAccount(t.Context(), store.SystemActor, store.NewAccount{Name: "m", Email: "m@x.test", Plan: "enterprise"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	plain, err := New(db, Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	counted, err := New(db, Config{Logger: log, Metrics: NewMetrics("test")})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"key=" + acc.Secret, "key=AAAAAAAAAAAAAAAAAAAA"} {
		allocs := func(h http.Handler) float64 {
			r := strings.NewReader(body)
			w := &discardWriter{h: http.Header{}}
			return testing.AllocsPerRun(200, func() {
				r.Reset(body)
				req, _ := http.NewRequest(http.MethodPost, "/v1/validate", r)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				clear(w.h)
				h.ServeHTTP(w, req)
			})
		}
		without, with := allocs(plain), allocs(counted)
		// The failure path stores its code in the context, which may cost
		// one allocation; a success costs none.
		slack := 0.0
		if !strings.Contains(body, acc.Secret) {
			slack = 1
		}
		if with > without+slack {
			t.Errorf("%v allocations per request with metrics, %v without (key known: %v)", with, without, strings.Contains(body, acc.Secret))
		}
	}
}
