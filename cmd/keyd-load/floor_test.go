package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The floor answers validate's route with a JSON body of exactly the size
// asked for, after reading the whole form body, and answers /healthz.
func TestFloorAnswers(t *testing.T) {
	for _, size := range []int{30, 301, 1024} {
		h := floorHandler(size)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/validate", strings.NewReader("key=AbCdEfGhIjKlMnOpQrSt"+formTail))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.Len() != size || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("size %d: %d, %d bytes, %q", size, rec.Code, rec.Body.Len(), rec.Body.String())
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusOK || rec.Body.String() != `{"status":"ok"}` {
			t.Errorf("healthz: %d %q", rec.Code, rec.Body.String())
		}
	}
}

// processCPU reads this process's CPU time; it only grows.
func TestProcessCPU(t *testing.T) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	after, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before < 0 || after < before {
		t.Errorf("CPU time went from %v to %v s (%d)", before, after, x)
	}
	if _, err := processCPU(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// The targets are graded against the floor measured in the same run.
func TestTargetsAgainstTheFloor(t *testing.T) {
	rep := &Report{Keys: 1_000_000, SmallKeys: 10_000, byName: map[string]*Case{}}
	for _, c := range []Case{
		{Name: caseFloor, RPS: 40000, CPUus: 20, P99ms: 2},
		{Name: caseFloor64, RPS: 40000, CPUus: 20, P99ms: 4},
		{Name: caseKnown, RPS: 37000, CPUus: 22},
		{Name: caseMixed, RPS: 30000, CPUus: 25},
		{Name: caseKnown64, RPS: 37000, CPUus: 22, P99ms: 5},
		{Name: caseKnownAB, RPS: 37000, CPUus: 22},
		{Name: caseKnownWarn, RPS: 38000, CPUus: 21},
		{Name: caseHealthz, RPS: 40000}, {Name: caseSmall, RPS: 38000}, {Name: caseHealthz64, RPS: 40000},
		{Name: caseUsage, RPS: 9000}, {Name: caseSPIO, RPS: 36000}, {Name: caseReceipt, RPS: 29000},
	} {
		rep.byName[c.Name] = &c
	}
	got := map[string]string{}
	for _, tg := range targets(rep) {
		got[tg.Name] = tg.Result
	}
	for name, want := range map[string]string{
		"validate known req/s / floor req/s @1M":                 "PASS", // 0.925
		"validate known CPU/req / floor CPU/req @1M":             "PASS", // 1.10
		"validate 50% unknown req/s / floor req/s @1M":           "FAIL", // 0.75
		"validate 50% unknown CPU/req / floor CPU/req @1M":       "FAIL", // 1.25
		"validate known p99 / floor p99, 64 connections":         "PASS", // 1.25
		"validate known req/s, defaults / --log-level warn":      "PASS", // 0.97
		"validate known req/s / healthz req/s @1M":               "INFO",
		"validate known CPU/req, defaults / --log-level warn":    "INFO",
		"validate with receipt req/s / validate known req/s @1M": "FAIL", // 0.78
	} {
		if got[name] != want {
			t.Errorf("%s: %s, want %s", name, got[name], want)
		}
	}
}

func TestHeadLines(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "all")
	if err := os.WriteFile(src, []byte("a\nb\nc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{1: "a\n", 2: "a\nb\n", 3: "a\nb\nc\n", 5: "a\nb\nc\n"} {
		dst, err := headLines(src, filepath.Join(dir, fmt.Sprint(n)), n)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); string(got) != want {
			t.Errorf("headLines %d = %q, want %q", n, got, want)
		}
	}
}
