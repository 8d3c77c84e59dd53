package main

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Connections are spread over the replicas as evenly as they divide.
func TestSpread(t *testing.T) {
	for _, c := range []struct {
		total, n int
		want     []int
	}{
		{96, 3, []int{32, 32, 32}},
		{64, 3, []int{22, 21, 21}},
		{12, 1, []int{12}},
		{4, 3, []int{2, 1, 1}},
	} {
		got := spread(c.total, c.n)
		if !slices.Equal(got, c.want) {
			t.Errorf("spread(%d, %d) = %v, want %v", c.total, c.n, got, c.want)
		}
	}
}

// The trials reduce to the owner's percentiles and the share of trials in
// which another replica still accepted the key, with those trials' times.
func TestSummarizeTrials(t *testing.T) {
	var trials []trial
	for i := range 200 {
		trials = append(trials, trial{owner: time.Duration(i+1) * time.Millisecond})
	}
	trials[199].stillAccepted = true // the slowest: 200 ms
	trials[10].notYetValid = true
	r := summarizeTrials("cluster", trials)
	if r.Trials != 200 || r.P50ms != 100 || r.P99ms != 198 || r.Maxms != 200 {
		t.Errorf("trials %d, p50 %v, p99 %v, max %v; want 200, 100, 198, 200", r.Trials, r.P50ms, r.P99ms, r.Maxms)
	}
	if r.StillAccepted != 1 || r.Share != 0.005 || !slices.Equal(r.LeakedMs, []float64{200}) || r.NotYetValid != 1 {
		t.Errorf("still accepted %d (share %v, times %v), not yet valid %d; want 1 (0.005, [200]), 1",
			r.StillAccepted, r.Share, r.LeakedMs, r.NotYetValid)
	}
	if empty := summarizeTrials("none", nil); empty.Trials != 0 || empty.Share != 0 || empty.P99ms != 0 {
		t.Errorf("no trials: %+v", empty)
	}
}

// One trial still accepted elsewhere fails the revocation target, and so
// does a p99 more than 50 ms above one machine's; no trials at all is no pass.
func TestClusterTargets(t *testing.T) {
	results := func(cluster, single Revocation) []string {
		var out []string
		for _, tg := range clusterTargets(cluster, single) {
			out = append(out, tg.Result)
		}
		return out
	}
	one := Revocation{Trials: 500, P99ms: 10}
	for _, c := range []struct {
		name    string
		cluster Revocation
		want    []string
	}{
		{"both met", Revocation{Trials: 1000, P99ms: 59.5}, []string{"PASS", "PASS"}},
		{"a leak", Revocation{Trials: 1000, StillAccepted: 1, Share: 0.001, P99ms: 20}, []string{"FAIL", "PASS"}},
		{"slow", Revocation{Trials: 1000, P99ms: 60.5}, []string{"PASS", "FAIL"}},
		{"no trials", Revocation{}, []string{"FAIL", "FAIL"}},
	} {
		if got := results(c.cluster, one); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := results(Revocation{Trials: 1000, P99ms: 20}, Revocation{}); got[1] != "FAIL" {
		t.Errorf("no trials on one machine: %v, want the comparison to fail", got)
	}

	rep := &ClusterReport{Targets: clusterTargets(Revocation{Trials: 10, P99ms: 5}, one)}
	if err := rep.verdict(); err != nil {
		t.Errorf("targets met: %v", err)
	}
	rep.Checks = []string{"round 1, validate: 3 answers with status 500"}
	if err := rep.verdict(); err == nil || !strings.Contains(err.Error(), "1 unexpected answers") {
		t.Errorf("an unexpected answer: %v", err)
	}
	rep = &ClusterReport{Targets: clusterTargets(Revocation{Trials: 10, StillAccepted: 1, Share: 0.1}, one)}
	if err := rep.verdict(); err == nil || !strings.Contains(err.Error(), "still accepted") {
		t.Errorf("a leak: %v", err)
	}
}

// Runs made at the same time against the replicas add up to their total:
// requests/s and CPU time summed, answers other than 2xx and errors
// counted, the highest latencies kept.
func TestClusterTotal(t *testing.T) {
	c := clusterTotal("validate", []Result{
		{RPS: 1000, Requests: 10000, CPUSeconds: 0.3, P50ms: 1, P99ms: 4, Status: map[string]int{"200": 10000}},
		{RPS: 2000, Requests: 20000, CPUSeconds: 0.3, P50ms: 2, P99ms: 3, Errors: 1, Status: map[string]int{"200": 19990, "503": 10}},
	})
	if c.RPS != 3000 || c.CPUus != 20 || c.P50ms != 2 || c.P99ms != 4 || c.Non2xx != 10 || c.Errors != 1 {
		t.Errorf("total %+v; want 3000 req/s, 20 µs/req, p50 2, p99 4, 10 non-2xx, 1 error", c)
	}
}

// With --rate the connections send their shares at even intervals instead
// of as fast as they are answered.
func TestRunLoadPaced(t *testing.T) {
	var requests atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte(`{"valid":true}`))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cfg := loadConfig{Target: "http://" + ln.Addr().String(), Path: "/v1/validate", Method: "POST", Body: "form",
		Keys: []string{"AbCdEfGhIjKlMnOpQrSt"}, Connections: 4, Duration: time.Second, Rate: 40}
	res, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 40 a second for a second: a loopback server answers thousands
	// unpaced, so even a slow machine stays far below that bound.
	if res.Requests < 1 || res.Requests > 60 || requests.Load() > 60 || res.Status["200"] != res.Requests {
		t.Errorf("paced at 40/s for 1 s: %d requests measured, %d received, status %v", res.Requests, requests.Load(), res.Status)
	}
}
