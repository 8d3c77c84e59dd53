package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Events: the catalogue of event types, which of them webhooks receive,
// how an endpoint's patterns select them, and the body of a webhook
// message. Every change appends its event in its own transaction (Tx.event)
// with a typed data payload (payloads.go); the fan-out (FanOut) turns the
// events into webhook messages with the rules below, inside the store, so
// that no rule is handed in from outside.

// Event types sent to webhook endpoints: the contract's (API.md,
// "Webhooks") and the two about an endpoint itself.
const (
	EventKeyReset          = "key.reset"
	EventKeyRevoked        = "key.revoked"
	EventAliasCreated      = "alias.created"
	EventAliasUpdated      = "alias.updated"
	EventAliasDeactivated  = "alias.deactivated"
	EventAliasReactivated  = "alias.reactivated"
	EventAliasDeleted      = "alias.deleted"
	EventAliasExpiring     = "alias.expiring"
	EventAliasExpired      = "alias.expired"
	EventSubaccountCreated = "subaccount.created"
	EventCreditsAllocated  = "credits.allocated"
	EventCreditsLow        = "credits.low"
	// A key reached its own spend limit (once per period).
	EventKeySpendLimitReached = "key.spend_limit_reached"
	// A site took or gave back a slot of a key with max_sites.
	EventSiteActivated   = "site.activated"
	EventSiteReleased    = "site.released"
	EventWebhookTest     = "webhook.test"
	EventWebhookDisabled = "webhook.disabled"
)

// Event types that exist for the audit log only; no endpoint receives them.
const (
	EventAccountCreated = "account.created"
	EventAccountUpdated = "account.updated"
	EventCreditsAdded   = "credits.added"
	EventPlanUpdated    = "plan.updated"
	EventKeyUpdated     = "key.updated"
	// A parent suspended or unsuspended one of its subaccounts.
	EventSubaccountSuspended   = "subaccount.suspended"
	EventSubaccountUnsuspended = "subaccount.unsuspended"
	// The operator made a one-time console sign-in link for the account.
	EventSignInLink           = "console.sign_in_link"
	EventWebhookCreated       = "webhook.created"
	EventWebhookUpdated       = "webhook.updated"
	EventWebhookDeleted       = "webhook.deleted"
	EventWebhookSecretRotated = "webhook.secret_rotated"
)

// webhookEventTypes are the event types sent to endpoints, in the
// contract's order.
var webhookEventTypes = []string{
	EventKeyReset, EventKeyRevoked,
	EventAliasCreated, EventAliasUpdated, EventAliasDeactivated,
	EventAliasReactivated, EventAliasDeleted, EventAliasExpiring,
	EventAliasExpired,
	EventSubaccountCreated,
	EventCreditsAllocated, EventCreditsLow,
	EventKeySpendLimitReached, EventSiteActivated, EventSiteReleased,
	EventWebhookTest, EventWebhookDisabled,
}

// WebhookEventTypes returns every event type sent to webhook endpoints, in
// a stable order.
func WebhookEventTypes() []string { return slices.Clone(webhookEventTypes) }

// IsWebhookEventType reports whether t is an event type sent to webhook
// endpoints.
func IsWebhookEventType(t string) bool { return slices.Contains(webhookEventTypes, t) }

// IsWebhookEventCategory reports whether c is the part before the dot of an
// event type sent to webhook endpoints ("alias" for "alias.*").
func IsWebhookEventCategory(c string) bool {
	return slices.Contains(WebhookEventCategories(), c)
}

// WebhookEventCategories returns the categories of the event types sent to
// webhook endpoints, in the order they first appear.
func WebhookEventCategories() []string {
	var cats []string
	for _, t := range webhookEventTypes {
		if cat, _, _ := strings.Cut(t, "."); !slices.Contains(cats, cat) {
			cats = append(cats, cat)
		}
	}
	return cats
}

// MatchEventPattern reports whether the event type t is selected by an
// endpoint's pattern p: "*" (every event), "<category>.*" (every event of
// a category, also types added after the pattern was stored) or one exact
// event type. A malformed pattern matches nothing; package webhooks
// refuses one before it is stored.
func MatchEventPattern(p, t string) bool {
	if p == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		// prefix is "<category>." with a non-empty category and no other '*'.
		return len(prefix) > 1 && strings.HasSuffix(prefix, ".") &&
			!strings.Contains(prefix, "*") &&
			len(t) > len(prefix) && strings.HasPrefix(t, prefix)
	}
	return p != "" && p == t && !strings.Contains(p, "*")
}

// MatchEventPatterns reports whether any of an endpoint's patterns selects
// t, that is whether the endpoint receives an event of type t.
func MatchEventPatterns(patterns []string, t string) bool {
	for _, p := range patterns {
		if MatchEventPattern(p, t) {
			return true
		}
	}
	return false
}

// WebhookPayload is the JSON body of every webhook message:
//
//	{"type": "alias.created", "timestamp": "2026-01-02T03:04:05.678Z", "sequence": 42, "data": {...}}
//
// Timestamp is when the event happened (RFC 3339, UTC, to the millisecond,
// EventTimeFormat), not when an attempt was made; webhook-timestamp
// carries the latter. Sequence counts the account's events in commit order
// (1, 2, 3, ...): of two events about the same thing, the one with the
// higher sequence happened later, whatever order they arrive in. Data is
// the event's data (payloads.go), which never holds a key or a key's hash;
// a key's hint is fine.
type WebhookPayload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	// Sequence is 0 only in messages queued before keyd numbered events.
	Sequence int64           `json:"sequence"`
	Data     json.RawMessage `json:"data"`
}

// indexScope is what an event's change may have touched of what the key
// index holds, so that a replica following the event log re-reads no more
// than that (see followLocked).
type indexScope int

const (
	scopeAccount indexScope = iota // the account and any of its keys
	scopeKey                       // the account's row, and the event's target if it is a key
	scopeNone                      // nothing the index holds
)

// eventIndexScope is the index scope of events of type typ. Every alias
// event, a primary key's update, a key's spend limit reached and its site
// slots change the target key only; credits running low comes with
// charges, which change the account's row only; webhooks, sign-in links
// and an alias's coming expiry change nothing the index holds; anything
// else (a reset, a suspension, a plan, credits added) is read again whole.
func eventIndexScope(typ string) indexScope {
	switch typ {
	case EventAliasCreated, EventAliasUpdated, EventAliasDeactivated, EventAliasReactivated, EventAliasDeleted,
		EventAliasExpired, EventKeyUpdated, EventKeySpendLimitReached, EventSiteActivated, EventSiteReleased,
		EventCreditsLow:
		return scopeKey
	case EventAliasExpiring, EventSignInLink, EventWebhookCreated, EventWebhookUpdated,
		EventWebhookDeleted, EventWebhookSecretRotated, EventWebhookTest, EventWebhookDisabled:
		return scopeNone
	}
	return scopeAccount
}

// webhookBody is the body of the messages for e.
func webhookBody(e Event) ([]byte, error) {
	return NewWebhookBody(e.Type, e.Sequence, e.CreatedAt, e.Data)
}

// NewWebhookBody builds the body of a message for an event: the exact
// bytes stored in the outbox and then signed and sent on every attempt, so
// that a retry carries the same body under the same webhook-id. data must
// marshal to a JSON object; nil gives {}.
func NewWebhookBody(eventType string, sequence int64, occurred time.Time, data any) ([]byte, error) {
	if !IsWebhookEventType(eventType) {
		return nil, fmt.Errorf("store: unknown event type %q", eventType)
	}
	raw := json.RawMessage("{}")
	if data != nil {
		b, err := marshalUnescaped(data)
		if err != nil {
			return nil, fmt.Errorf("store: encode %s data: %w", eventType, err)
		}
		if len(b) == 0 || b[0] != '{' {
			return nil, fmt.Errorf("store: %s data is not a JSON object", eventType)
		}
		raw = b
	}
	return marshalUnescaped(WebhookPayload{
		Type:      eventType,
		Timestamp: occurred.UTC().Format(EventTimeFormat),
		Sequence:  sequence,
		Data:      raw,
	})
}

// ParseWebhookBody decodes a message body built by NewWebhookBody, for
// receivers, tests and tools. It checks the shape, not the event type, so
// that a receiver keeps working when keyd adds event types.
func ParseWebhookBody(body []byte) (WebhookPayload, error) {
	var p WebhookPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return WebhookPayload{}, fmt.Errorf("decode webhook body: %w", err)
	}
	if dec.More() {
		return WebhookPayload{}, fmt.Errorf("decode webhook body: trailing data")
	}
	if p.Type == "" {
		return WebhookPayload{}, fmt.Errorf("decode webhook body: no type")
	}
	if _, err := time.Parse(time.RFC3339, p.Timestamp); err != nil {
		return WebhookPayload{}, fmt.Errorf("decode webhook body: timestamp: %w", err)
	}
	if p.Sequence < 0 {
		return WebhookPayload{}, fmt.Errorf("decode webhook body: negative sequence")
	}
	if len(p.Data) == 0 || p.Data[0] != '{' {
		return WebhookPayload{}, fmt.Errorf("decode webhook body: data is not a JSON object")
	}
	return p, nil
}

// marshalUnescaped encodes v compactly without escaping <, > and &, which
// keeps URLs in webhook bodies readable; the signature covers the bytes
// either way. An event's data, stored by Tx.event, is escaped, and stays so
// in the body.
func marshalUnescaped(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
