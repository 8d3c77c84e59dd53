package webhooks

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"keyd/store"
)

func TestNewBody(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))
	type aliasData struct {
		ID   string `json:"id"`
		Hint string `json:"hint"`
		URL  string `json:"url,omitempty"`
	}
	tests := []struct {
		name    string
		typ     string
		data    any
		want    string
		wantErr string
	}{
		{"struct data", store.EventAliasCreated, aliasData{ID: "key_1", Hint: "x9Qa"},
			`{"type":"alias.created","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{"id":"key_1","hint":"x9Qa"}}`, ""},
		{"nil data", store.EventWebhookTest, nil,
			`{"type":"webhook.test","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{}}`, ""},
		{"map data, html characters kept", store.EventKeyReset, map[string]any{"site": "https://a.example/?x=1&y=<2>"},
			`{"type":"key.reset","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{"site":"https://a.example/?x=1&y=<2>"}}`, ""},
		{"raw data compacted", store.EventCreditsLow, json.RawMessage("{ \"credits\" : 10 }"),
			`{"type":"credits.low","timestamp":"2026-03-04T04:06:07.890Z","sequence":7,"data":{"credits":10}}`, ""},
		{"unknown type", "alias.renamed", nil, "", "unknown event type"},
		{"pattern as type", "alias.*", nil, "", "unknown event type"},
		{"array data", store.EventAliasDeleted, []string{"a"}, "", "not a JSON object"},
		{"string data", store.EventAliasDeleted, "a", "", "not a JSON object"},
		{"null raw data", store.EventAliasDeleted, json.RawMessage("null"), "", "not a JSON object"},
		{"unencodable data", store.EventAliasDeleted, map[string]any{"f": func() {}}, "", "encode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewBody(tt.typ, 7, at, tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewBody err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("NewBody =\n%s\nwant\n%s", got, tt.want)
			}
			p, err := ParseBody(got)
			if err != nil {
				t.Fatalf("ParseBody(NewBody) = %v", err)
			}
			if p.Type != tt.typ || p.Timestamp != "2026-03-04T04:06:07.890Z" || p.Sequence != 7 {
				t.Fatalf("ParseBody = %+v", p)
			}
		})
	}
}

func TestNewBodyIsStable(t *testing.T) {
	// Map keys are sorted by encoding/json, so building the same event
	// twice gives the same bytes; the outbox stores them once anyway.
	data := map[string]any{"b": 1, "a": 2, "c": map[string]any{"z": 1, "y": 2}}
	at := time.Unix(1_700_000_000, 0)
	a, err := NewBody(store.EventAliasUpdated, 1, at, data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewBody(store.EventAliasUpdated, 1, at, data)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds differ:\n%s\n%s", a, b)
	}
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"minimal", `{"type":"x.y","timestamp":"2026-01-01T00:00:00Z","data":{}}`, true},
		{"future type and extra field", `{"type":"alias.renamed","timestamp":"2026-01-01T00:00:00Z","data":{"a":1},"v":2}`, true},
		{"with sequence and milliseconds", `{"type":"x.y","timestamp":"2026-01-01T00:00:00.123Z","sequence":3,"data":{}}`, true},
		{"negative sequence", `{"type":"x.y","timestamp":"2026-01-01T00:00:00Z","sequence":-1,"data":{}}`, false},
		{"no type", `{"timestamp":"2026-01-01T00:00:00Z","data":{}}`, false},
		{"bad timestamp", `{"type":"key.reset","timestamp":"yesterday","data":{}}`, false},
		{"no data", `{"type":"key.reset","timestamp":"2026-01-01T00:00:00Z"}`, false},
		{"array data", `{"type":"key.reset","timestamp":"2026-01-01T00:00:00Z","data":[]}`, false},
		{"trailing data", `{"type":"key.reset","timestamp":"2026-01-01T00:00:00Z","data":{}} {}`, false},
		{"not json", `type=key.reset`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBody([]byte(tt.body))
			if tt.ok != (err == nil) {
				t.Fatalf("ParseBody = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
