package pluginapi_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	pluginapi "keyd/plugin-api"
)

// logEnv is the test router with a request log at level, as keyd serve sets
// it up, writing to e.log; slow is the slow-request threshold (0: 1 s).
func logEnv(t *testing.T, level slog.Level, slow time.Duration) (*testEnv, *pluginapi.RequestLog) {
	t.Helper()
	e := newEnv(t, testToken)
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: level}))
	rl := pluginapi.NewRequestLog(logger, pluginapi.RequestLogConfig{Now: e.clock.Now, Slow: slow})
	h, err := pluginapi.New(e.db, pluginapi.Config{AdminToken: e.token, Logger: logger, Now: e.clock.Now, RequestLog: rl})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e, rl
}

// logLines are the log's lines with msg, or all of them for "".
func logLines(e *testEnv, msg string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
		if line != "" && (msg == "" || strings.Contains(line, " msg="+msg+" ") || strings.Contains(line, ` msg="`+msg+`"`)) {
			out = append(out, line)
		}
	}
	return out
}

// checkNoKeys fails when any of keys appears in the log.
func checkNoKeys(t *testing.T, e *testEnv, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if strings.Contains(e.log.String(), k) {
			t.Errorf("the log shows the key %s:\n%s", k, e.log.String())
		}
	}
}

// At info, requests that went as expected get no line; the summary counts
// them by route and status, with durations, once per interval.
func TestRequestLogSummary(t *testing.T) {
	e, rl := logEnv(t, slog.LevelInfo, 0)
	created := e.createStoreAccount("Shop", "pro", 100)
	e.log.buf.Reset()
	for range 3 {
		if res := e.validateForm(created.Secret); res.status != http.StatusOK {
			t.Fatalf("validate: %d %s", res.status, res.raw)
		}
	}
	unknown := "AAAAAAAAAAAAAAAAAAAA"
	for range 2 {
		if res := e.validateForm(unknown); res.status != http.StatusUnauthorized {
			t.Fatalf("validate an unknown key: %d %s", res.status, res.raw)
		}
	}
	e.do("GET", "/healthz", "", "")
	e.do("GET", "/no/such/path", "", "")
	if lines := logLines(e, ""); len(lines) != 0 {
		t.Fatalf("requests that went as expected were logged at info:\n%s", strings.Join(lines, "\n"))
	}

	e.clock.Add(time.Minute)
	rl.Summarize()
	lines := logLines(e, "requests")
	if len(lines) != 1 {
		t.Fatalf("want one summary line, got:\n%s", e.log.String())
	}
	for _, want := range []string{"level=INFO", "interval=1m0s", "total=7", "5xx=0", "slow=0",
		`"POST /v1/validate"="200:3 401:2 p50=`, `"GET /healthz"="200:1 p50=`, `"GET unmatched"="404:1 p50=`, " max="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("summary lacks %s:\n%s", want, lines[0])
		}
	}
	checkNoKeys(t, e, created.Secret, unknown)
	checkPercentilesUnderMax(t, lines[0])

	// The next interval starts empty: with no requests there is no line.
	e.log.buf.Reset()
	e.clock.Add(time.Minute)
	rl.Summarize()
	if out := e.log.String(); out != "" {
		t.Errorf("a summary of no requests was logged: %s", out)
	}
	e.do("GET", "/healthz", "", "")
	e.clock.Add(30 * time.Second)
	rl.Summarize()
	if lines := logLines(e, "requests"); len(lines) != 1 || !strings.Contains(lines[0], "total=1 ") ||
		!strings.Contains(lines[0], "interval=30s") || strings.Contains(lines[0], "/v1/validate") {
		t.Errorf("second summary: %q", lines)
	}
}

// Failures worth an operator's attention get a line at info: 5xx at error,
// 4xx of the owners' and the operator's API at info. The 4xx of the routes
// plugins call do not. No line shows a key.
func TestRequestLogFailureLines(t *testing.T) {
	e, rl := logEnv(t, slog.LevelInfo, 0)
	created := e.createStoreAccount("Shop", "pro", 100)
	e.log.buf.Reset()
	wrong := "BBBBBBBBBBBBBBBBBBBB"
	if res := e.validateForm(wrong); res.status != http.StatusUnauthorized {
		t.Fatalf("validate an unknown key: %d %s", res.status, res.raw)
	}
	e.do("POST", "/v1/usage", "application/json", `{"units":1}`, "X-API-Key", wrong)
	if lines := logLines(e, ""); len(lines) != 0 {
		t.Fatalf("refused validations and usage were logged at info:\n%s", strings.Join(lines, "\n"))
	}

	checkError(t, e.do("GET", "/v1/account", "", "", "X-API-Key", wrong), http.StatusUnauthorized, "UNAUTHORIZED")
	checkError(t, e.do("GET", "/admin/v1/accounts", "", "", "Authorization", "Bearer "+wrong+wrong), http.StatusUnauthorized, "UNAUTHORIZED")
	checkError(t, e.doJSON("POST", "/v1/aliases", `{"name":`, "X-API-Key", created.Secret), http.StatusBadRequest, "INVALID_REQUEST")
	lines := logLines(e, "request")
	if len(lines) != 3 {
		t.Fatalf("want a line for each of the 3 refused owner and admin requests, got:\n%s", e.log.String())
	}
	for i, want := range []string{"path=/v1/account status=401", "path=/admin/v1/accounts status=401", "path=/v1/aliases status=400"} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "level=INFO") || !strings.Contains(lines[i], "request_id=") {
			t.Errorf("line %d: want level=INFO, a request id and %q:\n%s", i, want, lines[i])
		}
	}
	if !strings.Contains(lines[2], "key_hint="+created.Secret[len(created.Secret)-4:]) {
		t.Errorf("the owner's failed request does not name the key by its hint: %s", lines[2])
	}

	// A 5xx: readiness with the database gone.
	e.db.Close()
	res := e.do("GET", "/readyz", "", "", "X-Request-ID", "trace-503")
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a closed database: %d", res.status)
	}
	failed := logLines(e, "request failed")
	if len(failed) != 1 || !strings.Contains(failed[0], "level=ERROR") || !strings.Contains(failed[0], "status=503") ||
		!strings.Contains(failed[0], "request_id=trace-503") || !strings.Contains(failed[0], "error=") {
		t.Errorf("want one error line for the 503 with its request id and error, got %q", failed)
	}
	e.clock.Add(time.Minute)
	rl.Summarize()
	if s := logLines(e, "requests"); len(s) != 1 || !strings.Contains(s[0], "5xx=1 ") || !strings.Contains(s[0], `"GET /readyz"="503:1 `) {
		t.Errorf("summary: %q", s)
	}
	checkNoKeys(t, e, created.Secret, wrong)
}

// A request that takes at least the slow threshold gets a warning whatever
// its status, with the key's hint but never the key.
func TestRequestLogSlowRequests(t *testing.T) {
	e, rl := logEnv(t, slog.LevelInfo, time.Nanosecond) // every request is slow
	created := e.createStoreAccount("Shop", "pro", 100)
	e.log.buf.Reset()
	if res := e.validateForm(created.Secret); res.status != http.StatusOK {
		t.Fatalf("validate: %d %s", res.status, res.raw)
	}
	lines := logLines(e, "slow request")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "path=/v1/validate status=200 duration=") ||
		!strings.Contains(lines[0], "key_hint="+created.Secret[len(created.Secret)-4:]) {
		t.Fatalf("want a warning for the slow validation, got:\n%s", e.log.String())
	}
	e.clock.Add(time.Minute)
	rl.Summarize()
	if s := logLines(e, "requests"); len(s) != 1 || !strings.Contains(s[0], "slow=1 ") {
		t.Errorf("summary: %q", s)
	}
	checkNoKeys(t, e, created.Secret)

	// Under the threshold, nothing.
	e, _ = logEnv(t, slog.LevelInfo, time.Hour)
	created = e.createStoreAccount("Shop", "pro", 100)
	e.log.buf.Reset()
	e.validateForm(created.Secret)
	if lines := logLines(e, ""); len(lines) != 0 {
		t.Errorf("a fast request was logged: %q", lines)
	}
}

// At debug every request gets a line, still without its key.
func TestRequestLogDebugLogsEveryRequest(t *testing.T) {
	e, _ := logEnv(t, slog.LevelDebug, 0)
	created := e.createStoreAccount("Shop", "pro", 100)
	e.log.buf.Reset()
	e.validateForm(created.Secret)
	e.validateForm("CCCCCCCCCCCCCCCCCCCC")
	e.do("GET", "/healthz", "", "")
	lines := logLines(e, "request")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines at debug, got:\n%s", e.log.String())
	}
	for i, want := range []string{"path=/v1/validate status=200", "path=/v1/validate status=401", "path=/healthz status=200"} {
		if !strings.Contains(lines[i], "level=DEBUG") || !strings.Contains(lines[i], want) {
			t.Errorf("line %d: want level=DEBUG and %q: %s", i, want, lines[i])
		}
	}
	checkNoKeys(t, e, created.Secret, "CCCCCCCCCCCCCCCCCCCC")
}

// checkPercentilesUnderMax checks each route of a summary line: p50 <= p99 <= max.
func checkPercentilesUnderMax(t *testing.T, line string) {
	t.Helper()
	for _, part := range strings.Split(line, `"`) {
		if !strings.Contains(part, " p50=") {
			continue
		}
		var d [3]time.Duration
		for i, name := range []string{"p50=", "p99=", "max="} {
			_, v, _ := strings.Cut(part, name)
			v, _, _ = strings.Cut(v, " ")
			var err error
			if d[i], err = time.ParseDuration(v); err != nil {
				t.Fatalf("%s%q: %v", name, v, err)
			}
		}
		if d[0] > d[1] || d[1] > d[2] {
			t.Errorf("percentiles out of order: %s", part)
		}
	}
}
