package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"keyd/store"
)

// keyd aliases create reads --ttl with the API's duration grammar and gives
// --expires-at the ttl's bounds.
func TestCLIAliasExpiryUsesTheAPIsRules(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "o@acme.test", "--plan", "mega")
	before := time.Now().UTC().Truncate(time.Second)
	out := c.mustRun("aliases", "create", "--account", id, "--name", "decimal days", "--ttl", "1.5d")
	after := time.Now().UTC()
	m := regexp.MustCompile(`expires (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("aliases create --ttl 1.5d printed %q", out)
	}
	at, _ := time.Parse(timeLayout, m[1])
	if at.Before(before.Add(36*time.Hour)) || at.After(after.Add(36*time.Hour)) {
		t.Errorf("--ttl 1.5d expires at %v, want 36h after %v", at, before)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--ttl", "3600"}, "--ttl must be a number and a unit"},
		{[]string{"--ttl", "1h30m"}, "--ttl must be a number and a unit"},
		{[]string{"--ttl", "10000d"}, "--ttl must be between 1m and 3650d"},
		{[]string{"--ttl", "30s"}, "--ttl must be between 1m and 3650d"},
		{[]string{"--expires-at", time.Now().Add(30 * time.Second).UTC().Format(time.RFC3339)}, "--expires-at must be between 1 minute and 3650 days from now"},
		{[]string{"--expires-at", time.Now().AddDate(11, 0, 0).UTC().Format(time.RFC3339)}, "--expires-at must be between 1 minute and 3650 days from now"},
	} {
		_, _, err := c.run(append([]string{"aliases", "create", "--account", id, "--name", "refused"}, tt.args...)...)
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("aliases create %s: %v, want a usage error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// keyd aliases create sets an alias's spend limit and site activations.
func TestCLIAliasLimits(t *testing.T) {
	c := newCLI(t)
	id, _ := c.createAccount("--name", "Acme", "--email", "o@acme.test", "--plan", "mega")
	c.mustRun("aliases", "create", "--account", id, "--name", "capped", "--spend-limit", "500", "--spend-period", "day",
		"--max-sites", "3", "--release-after", "30d")
	db, err := store.Open(context.Background(), c.path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := db.ListKeys(context.Background(), id)
	db.Close()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	k := keys[1]
	if k.SpendLimit == nil || *k.SpendLimit != (store.SpendLimit{Limit: 500, Period: store.PeriodDay}) ||
		k.MaxSites == nil || *k.MaxSites != 3 || k.ReleaseAfter == nil || *k.ReleaseAfter != 30*24*time.Hour {
		t.Errorf("alias has spend limit %v, max sites %v, release after %v; want 500/day, 3, 30 days", k.SpendLimit, k.MaxSites, k.ReleaseAfter)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--spend-limit", "5", "--spend-period", "week"}, "--spend-limit: period must be day, month or total"},
		{[]string{"--max-sites", "-1"}, "--max-sites: must be a whole number"},
		{[]string{"--max-sites", "2", "--release-after", "10m"}, "--release-after must be between 1h and 3650d"},
	} {
		_, _, err := c.run(append([]string{"aliases", "create", "--account", id, "--name", "refused"}, tt.args...)...)
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("aliases create %s: %v, want a usage error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
