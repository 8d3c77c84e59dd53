package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// The warnings keyd serve logs for settings that weaken security.
var insecureWarnings = []string{
	"--webhook-allow-private is on",
	"--test-keys is on",
	"the API listens on a non-loopback address",
	"the admin API is on and listens on a non-loopback address",
}

func warningLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=WARN") {
			out = append(out, line)
		}
	}
	return out
}

func TestServeWarnsAboutInsecureSettings(t *testing.T) {
	p := serveInProcess(t, filepath.Join(t.TempDir(), "keyd.db"), "--addr", "0.0.0.0:0", "--webhook-allow-private", "--test-keys")
	p.stop() // the log is written behind the server: stopping it writes it all
	warnings := strings.Join(warningLines(p.stderr.String()), "\n")
	for _, w := range insecureWarnings {
		if !strings.Contains(warnings, w) {
			t.Errorf("no warning %q in the log:\n%s", w, p.stderr.String())
		}
	}
}

func TestServeDefaultsLogNoWarning(t *testing.T) {
	// serveInProcess listens on 127.0.0.1 with the admin API on: the
	// defaults plus a token, which is safe on loopback.
	p := serveInProcess(t, filepath.Join(t.TempDir(), "keyd.db"))
	p.stop() // the log is written behind the server: stopping it writes it all
	if !strings.Contains(p.stderr.String(), "keyd listening") {
		t.Fatalf("the log does not show the start:\n%s", p.stderr.String())
	}
	for _, line := range warningLines(p.stderr.String()) {
		for _, w := range insecureWarnings {
			if strings.Contains(line, w) {
				t.Errorf("warning %q with the defaults: %s", w, line)
			}
		}
	}
}

// --test-keys reaches the API: a published test key validates, and without
// the flag it is a key like any other.
func TestServeTestKeysFlag(t *testing.T) {
	for _, on := range []bool{true, false} {
		args := []string{}
		want := http.StatusOK
		if on {
			args = append(args, "--test-keys")
		} else {
			want = http.StatusUnauthorized
		}
		p := serveInProcess(t, filepath.Join(t.TempDir(), "keyd.db"), args...)
		res, err := http.Post(p.base+"/v1/validate", "application/x-www-form-urlencoded", strings.NewReader("key=testVALID00000000000"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("--test-keys %v: validate answered %d, want %d", on, res.StatusCode, want)
		}
	}
}
