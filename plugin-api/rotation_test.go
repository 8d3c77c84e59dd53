package pluginapi_test

import (
	"testing"
	"time"
)

// TestRotationNotice: a primary key in the grace of a reset answers VALID
// with when it was replaced and when its grace ends, before and after a
// restart; the new key, and an alias, answer without rotation, and so does
// nothing once the grace has ended.
func TestRotationNotice(t *testing.T) {
	e := newEnv(t, testToken)
	_, k1 := e.createAccount("Acme", "pro", 10)
	alias := e.doJSON("POST", "/v1/aliases", `{"name":"Client"}`, "X-API-Key", k1)
	if alias.status != 201 {
		t.Fatalf("create alias: %d %s", alias.status, alias.raw)
	}
	if r := e.validateJSON(k1); r.status != 200 || r.body["rotation"] != nil {
		t.Fatalf("before any reset: %d %s, want VALID without rotation", r.status, r.raw)
	}
	e.clock.Add(90 * time.Second)
	replacedAt := e.clock.Now()
	res := e.doJSON("POST", "/v1/account/reset-key", `{"grace_period":"48h"}`, "X-API-Key", k1)
	if res.status != 200 {
		t.Fatalf("reset: %d %s", res.status, res.raw)
	}
	k2 := str(res.body, "key")
	e.clock.Add(time.Hour)

	check := func(when string) {
		t.Helper()
		r := e.validateForm(k1)
		if r.status != 200 || str(r.body, "code") != "VALID" {
			t.Fatalf("%s: old key: %d %s", when, r.status, r.raw)
		}
		checkFields(t, when+": rotation", r.body["rotation"], "grace_ends_at", "replaced_at")
		if got := str(r.body, "rotation", "replaced_at"); got != replacedAt.Format(time.RFC3339) {
			t.Errorf("%s: replaced_at %s, want %s", when, got, replacedAt.Format(time.RFC3339))
		}
		if got, want := str(r.body, "rotation", "grace_ends_at"), str(res.body, "previous", "valid_until"); got != want || want == "" {
			t.Errorf("%s: grace_ends_at %s, want the reset's previous.valid_until %s", when, got, want)
		}
		for name, key := range map[string]string{"new key": k2, "alias": str(alias.body, "key")} {
			if r := e.validateJSON(key); r.status != 200 || r.body["rotation"] != nil {
				t.Errorf("%s: %s: %d %s, want VALID without rotation", when, name, r.status, r.raw)
			}
		}
	}
	check("after the reset")
	e.reopen()
	check("after a restart")

	// A second reset replaces the new key: its notice gives its own time;
	// the first key's grace was ended by it.
	e.clock.Add(time.Hour)
	second := e.clock.Now()
	if r := e.doJSON("POST", "/v1/account/reset-key", `{"grace_period":"1h"}`, "X-API-Key", k2); r.status != 200 {
		t.Fatalf("second reset: %d %s", r.status, r.raw)
	}
	checkFailure(t, e.validateJSON(k1), 401, "REVOKED")
	r := e.validateJSON(k2)
	if got := str(r.body, "rotation", "replaced_at"); r.status != 200 || got != second.Format(time.RFC3339) {
		t.Errorf("second key in grace: %d %s, want replaced_at %s", r.status, r.raw, second.Format(time.RFC3339))
	}
	e.clock.Add(time.Hour)
	checkFailure(t, e.validateJSON(k2), 401, "REVOKED")
}
