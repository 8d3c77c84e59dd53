package pluginapi

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestMetricsAddNoAllocations checks that counting a request (route and
// status, validate latency and outcome) allocates nothing: every counter is
// resolved before or at its first use. The one cost metrics add is that a
// failed validation notes its code in gin's per-request map (two
// allocations: the map and its first group).
func TestMetricsAddNoAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters change allocation counts")
	}
	gin.SetMode(gin.ReleaseMode)
	s := &server{log: slog.New(slog.DiscardHandler), requestLogger: NewRequestLog(nil, RequestLogConfig{})}
	r := gin.New()
	r.Use(s.requestLog)
	r.POST("/v1/validate", func(c *gin.Context) {
		if c.Request.Header.Get("X-Fail") != "" {
			s.validateFailure(c, newError(http.StatusUnauthorized, codeNoKey, "no such key"), nil)
			return
		}
		c.Data(http.StatusOK, "application/json", []byte(`{"valid":true}`))
	})
	s.requestLogger.setRoutes(r.Routes())
	counted := newRequestMetrics(NewMetrics("test"), r.Routes())

	for _, fail := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodPost, "/v1/validate", nil)
		if fail {
			req.Header.Set("X-Fail", "1")
		}
		w := &discardWriter{h: http.Header{}}
		allocs := func(m *requestMetrics) float64 {
			s.requestMetrics = m
			// The least of a few runs: other goroutines of the test
			// binary may allocate meanwhile.
			least := -1.0
			for range 3 {
				n := testing.AllocsPerRun(100, func() {
					clear(w.h)
					r.ServeHTTP(w, req)
				})
				if least < 0 || n < least {
					least = n
				}
			}
			return least
		}
		without, with := allocs(nil), allocs(counted)
		slack := 0.0
		if fail {
			slack = 2
		}
		if raceEnabled {
			slack++
		}
		if with > without+slack {
			t.Errorf("failure %v: %v allocations per request with metrics, %v without", fail, with, without)
		}
	}
}
