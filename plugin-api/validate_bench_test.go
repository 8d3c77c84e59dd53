package pluginapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
	"keyd/store/storetest"
)

// Micro-benchmarks of the validate hot path's pieces that live here: request
// parsing (form and JSON), encoding the 200 answer, and the request log line.
// The store's pieces (hashing, index lookup) are benchmarked in store/.

const benchKey = "AbCdEfGhIjKlMnOpQrSt"

var benchBodies = map[string]struct{ ctype, body string }{
	"form": {"application/x-www-form-urlencoded",
		"key=" + benchKey + "&site=https%3A%2F%2Fshop.example.com%2F&plugin=shop-plugin&plugin_version=1.0.0&wp_version=6.8.1"},
	"json": {"application/json",
		`{"key":"` + benchKey + `","site":"https://shop.example.com/","plugin":"shop-plugin","plugin_version":"1.0.0","wp_version":"6.8.1"}`},
}

func BenchmarkValidateParse(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	s := &server{validate: newValidator()}
	for _, name := range []string{"form", "json"} {
		in := benchBodies[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			header := http.Header{"Content-Type": {in.ctype}}
			body := strings.NewReader(in.body)
			for b.Loop() {
				// A fresh request as net/http would hand it over: the
				// header as read from the wire, the body unread.
				body.Reset(in.body)
				c.Request = &http.Request{Method: http.MethodPost, Header: header, Body: io.NopCloser(body),
					ContentLength: int64(len(in.body))}
				req, err := s.parseValidateRequest(c)
				if err != nil || req.Key != benchKey {
					b.Fatalf("parse: %+v, %v", req, err)
				}
			}
		})
	}
}

func benchKeyView() store.KeyView {
	return store.KeyView{KeyID: "key_0123456789abcdef", Type: store.KeyTypeAlias, Name: "Alias 1", Hint: "QrSt",
		Scopes: []string{"*"}, AccountID: "acc_0123456789abcdef", AccountStatus: store.AccountActive, Plan: "pro", Credits: 1_000_000}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func BenchmarkValidateEncode(b *testing.B) {
	v := benchKeyView()
	// The reference: encoding/json on the answer's shape.
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		ref := validBodyOf(&v)
		for b.Loop() {
			if _, err := json.Marshal(ref); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What the handler does: appending by hand into a reused buffer.
	b.Run("appendValidBody", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = appendValidBody(buf[:0], &v, encodeTestNow)
		}
	})
}

// BenchmarkMiddleware is each per-request middleware on its own, and all of
// them as New chains them, around a handler that only answers 200: what each
// costs a request over gin's routing. The request log runs at the level
// `keyd serve` uses by default (info: counting, no line), at warn, and at
// debug (a line for every request, text to a discarded writer).
func BenchmarkMiddleware(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	logAt := func(level slog.Level) *server {
		log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
		return &server{log: log, maxBody: 64 << 10, requestLogger: NewRequestLog(log, RequestLogConfig{})}
	}
	info := logAt(slog.LevelInfo)
	withMetrics := logAt(slog.LevelInfo)
	cases := []struct {
		name    string
		s       *server
		metrics bool
		chain   func(s *server) []gin.HandlerFunc
	}{
		{"none", info, false, func(s *server) []gin.HandlerFunc { return nil }},
		{"recoverPanic", info, false, func(s *server) []gin.HandlerFunc { return []gin.HandlerFunc{s.recoverPanic} }},
		{"limitBody", info, false, func(s *server) []gin.HandlerFunc { return []gin.HandlerFunc{s.limitBody} }},
		{"requestLog/info", info, false, func(s *server) []gin.HandlerFunc { return []gin.HandlerFunc{s.requestLog} }},
		{"requestLog/warn", logAt(slog.LevelWarn), false, func(s *server) []gin.HandlerFunc { return []gin.HandlerFunc{s.requestLog} }},
		{"requestLog/debug", logAt(slog.LevelDebug), false, func(s *server) []gin.HandlerFunc { return []gin.HandlerFunc{s.requestLog} }},
		{"requestLog/info+metrics", withMetrics, true, func(s *server) []gin.HandlerFunc { return []gin.HandlerFunc{s.requestLog} }},
		{"all/info", info, false, func(s *server) []gin.HandlerFunc {
			return []gin.HandlerFunc{s.requestLog, s.recoverPanic, s.limitBody}
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			r := gin.New()
			r.Use(tc.chain(tc.s)...)
			r.POST("/v1/validate", func(c *gin.Context) { c.Status(http.StatusOK) })
			tc.s.requestLogger.setRoutes(r.Routes())
			if tc.metrics {
				tc.s.requestMetrics = newRequestMetrics(NewMetrics("bench"), r.Routes())
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, "/v1/validate", http.NoBody)
				clear(w.h)
				r.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkRequestID is the X-Request-ID header: echoing the client's, and
// making one when the client sent none.
func BenchmarkRequestID(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	rl := NewRequestLog(nil, RequestLogConfig{})
	for _, echo := range []bool{true, false} {
		name := "generate"
		if echo {
			name = "echo"
		}
		b.Run(name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			c, _ := gin.CreateTestContext(w)
			c.Request, _ = http.NewRequest(http.MethodGet, "/healthz", http.NoBody)
			if echo {
				c.Request.Header.Set("X-Request-ID", "client-id-0123456789")
			}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				if rl.requestID(c) == "" {
					b.Fatal("no id")
				}
			}
		})
	}
}

// BenchmarkRouter measures whole requests through the real router and a real
// store, /healthz beside /v1/validate, so their difference is what validation
// costs over serving HTTP at all (the network part is measured by make bench),
// and validate with a receipt beside validate without.
func BenchmarkRouter(b *testing.B) {
	dsn := storetest.DSN(b)
	db, err := store.Open(b.Context(), dsn, StoreOptions(dsn)...)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	acc, err := db.CreateAccount(b.Context(), store.SystemActor, store.NewAccount{Name: "bench", Email: "b@x.test", Plan: "enterprise"})
	if err != nil {
		b.Fatal(err)
	}
	// Logging at info, as keyd runs by default, to nowhere.
	h, err := New(db, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		b.Fatal(err)
	}
	form := "key=" + acc.Secret + "&site=https%3A%2F%2Fshop.example.com%2F&plugin=shop-plugin&plugin_version=1.0.0&wp_version=6.8.1"
	cases := []struct{ name, method, path, ctype, body string }{
		{"healthz", "GET", "/healthz", "", ""},
		{"validate-form", "POST", "/v1/validate", "application/x-www-form-urlencoded", form},
		// With a signed receipt: after the first request the receipt is
		// reused, as it is for half its life (compare with validate-form).
		{"validate-form-receipt", "POST", "/v1/validate", "application/x-www-form-urlencoded", form + "&receipt=1"},
		{"validate-json", "POST", "/v1/validate", "application/json", `{"key":"` + acc.Secret + `","site":"https://shop.example.com/"}`},
		{"validate-unknown", "POST", "/v1/validate", "application/x-www-form-urlencoded", "key=AAAAAAAAAAAAAAAAAAAA"},
		{"api-status.php", "POST", "/v2/api-status.php", "application/x-www-form-urlencoded", "key=" + acc.Secret +
			"&useragent=AgentMozilla%252F5.0&DomainCheck=https%3A%2F%2Fshop.example.com&Info=6.8.1%7C8.2.7&ImagesCount=1200&ThumbsCount=8400&host=shop.example.com"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			body := strings.NewReader(c.body)
			w := &discardWriter{h: http.Header{}}
			for b.Loop() {
				body.Reset(c.body)
				r, _ := http.NewRequest(c.method, c.path, body)
				if c.ctype != "" {
					r.Header.Set("Content-Type", c.ctype)
				}
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkReceiptReuse is what a receipt adds to a validation once it is
// signed: finding it again for the same key, site and state.
func BenchmarkReceiptReuse(b *testing.B) {
	// The fixture's key (receipt_fixture_test.go): the store is not what
	// is measured.
	r := newReceipts(newFixedReceiptKey("rk_5e1d0c9b8a7f6e5d", 1), 0, slog.New(slog.DiscardHandler))
	v := benchKeyView()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	first, err := r.issue(b.Context(), &v, "https://shop.example.com/", at)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if token, _ := r.issue(b.Context(), &v, "https://shop.example.com/", at); token != first {
			b.Fatal("not reused")
		}
	}
}
