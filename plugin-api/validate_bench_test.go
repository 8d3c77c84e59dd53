package pluginapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"keyd/store"
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

func benchValidBody() validBody {
	v := store.KeyView{KeyID: "key_0123456789abcdef", Type: store.KeyTypeAlias, Name: "Alias 1", Hint: "QrSt",
		Scopes: []string{"*"}, AccountID: "acc_0123456789abcdef", AccountStatus: store.AccountActive, Plan: "pro", Credits: 1_000_000}
	return validBody{Valid: true, Code: codeValid,
		Key:     validKeyBody{ID: v.KeyID, Type: v.Type, Name: v.Name, Hint: v.Hint, ExpiresAt: unixPtr(v.ExpiresAt), Scopes: v.Scopes},
		Account: validAccountBody{ID: v.AccountID, Plan: v.Plan, Status: v.AccountStatus, Credits: v.Credits}}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func BenchmarkValidateEncode(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	body := benchValidBody()
	// What the handler does today: gin's c.JSON (encoding/json underneath).
	b.Run("gin-c.JSON", func(b *testing.B) {
		b.ReportAllocs()
		w := &discardWriter{h: http.Header{}}
		c, _ := gin.CreateTestContext(w)
		for b.Loop() {
			c.Writer.Header().Del("Content-Type")
			c.JSON(http.StatusOK, body)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The alternative to weigh: appending the fixed shape by hand into a
	// reused buffer, writing with c.Data.
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = appendValidBodyForBench(buf[:0], &body)
		}
		var decoded validBody
		if err := json.Unmarshal(buf, &decoded); err != nil || decoded.Key.ID != body.Key.ID {
			b.Fatalf("hand-written body does not decode: %v", err)
		}
	})
}

// appendValidBodyForBench is a sketch of a hand-written encoder for the 200
// answer, to measure against encoding/json. Strings go through
// strconv.AppendQuote-like JSON quoting; all values here are ASCII.
func appendValidBodyForBench(b []byte, v *validBody) []byte {
	q := func(b []byte, s string) []byte {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c > 0x7e {
				out, _ := json.Marshal(s) // the rare string that needs escaping
				return append(b, out...)
			}
		}
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b = append(b, `{"valid":true,"code":`...)
	b = q(b, v.Code)
	b = append(b, `,"key":{"id":`...)
	b = q(b, v.Key.ID)
	b = append(b, `,"type":`...)
	b = q(b, v.Key.Type)
	b = append(b, `,"name":`...)
	b = q(b, v.Key.Name)
	b = append(b, `,"hint":`...)
	b = q(b, v.Key.Hint)
	b = append(b, `,"expires_at":`...)
	if v.Key.ExpiresAt == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = v.Key.ExpiresAt.AppendFormat(b, "2006-01-02T15:04:05Z07:00")
		b = append(b, '"')
	}
	b = append(b, `,"scopes":[`...)
	for i, sc := range v.Key.Scopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = q(b, sc)
	}
	b = append(b, `]},"account":{"id":`...)
	b = q(b, v.Account.ID)
	b = append(b, `,"plan":`...)
	b = q(b, v.Account.Plan)
	b = append(b, `,"status":`...)
	b = q(b, v.Account.Status)
	b = append(b, `,"credits":`...)
	b = strconv.AppendInt(b, v.Account.Credits, 10)
	return append(b, "}}"...)
}

// BenchmarkRequestLog is the per-request logging middleware around a handler
// that does nothing, at the level `keyd serve` uses by default (info, text to
// a discarded writer) and with --log-level warn.
func BenchmarkRequestLog(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run("level="+level.String(), func(b *testing.B) {
			s := &server{log: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))}
			r := gin.New()
			r.Use(s.requestLog)
			r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })
			req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				r.ServeHTTP(w, req)
			}
		})
	}
}
