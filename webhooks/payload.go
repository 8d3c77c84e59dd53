package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"keyd/store"
)

// Payload is the JSON body of every message:
//
//	{"type": "alias.created", "timestamp": "2026-01-02T03:04:05.678Z", "sequence": 42, "data": {...}}
//
// Timestamp is when the event happened (RFC 3339, UTC, to the millisecond,
// [store.EventTimeFormat]), not when an attempt was made; webhook-timestamp
// carries the latter. Sequence counts the account's events in commit order
// (1, 2, 3, ...): of two events about the same thing, the one with the
// higher sequence happened later, whatever order they arrive in. Data must
// never hold a key or a key's hash; a key's hint is fine.
type Payload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	// Sequence is 0 only in messages queued before keyd numbered events.
	Sequence int64           `json:"sequence"`
	Data     json.RawMessage `json:"data"`
}

// NewBody builds the body of a message for an event: the exact bytes to
// store in the outbox and then sign and send on every attempt, so that a
// retry carries the same body under the same webhook-id. data must marshal
// to a JSON object; nil gives {}.
func NewBody(eventType string, sequence int64, occurred time.Time, data any) ([]byte, error) {
	if !IsEventType(eventType) {
		return nil, fmt.Errorf("webhooks: unknown event type %s", quote(eventType))
	}
	raw := json.RawMessage("{}")
	if data != nil {
		b, err := marshal(data)
		if err != nil {
			return nil, fmt.Errorf("webhooks: encode %s data: %w", eventType, err)
		}
		if len(b) == 0 || b[0] != '{' {
			return nil, fmt.Errorf("webhooks: %s data is not a JSON object", eventType)
		}
		raw = b
	}
	return marshal(Payload{
		Type:      eventType,
		Timestamp: occurred.UTC().Format(store.EventTimeFormat),
		Sequence:  sequence,
		Data:      raw,
	})
}

// ParseBody decodes a message body built by [NewBody], for receivers, tests
// and tools. It checks the shape, not the event type, so that a receiver
// keeps working when keyd adds event types.
func ParseBody(body []byte) (Payload, error) {
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return Payload{}, fmt.Errorf("webhooks: decode body: %w", err)
	}
	if dec.More() {
		return Payload{}, fmt.Errorf("webhooks: decode body: trailing data")
	}
	if p.Type == "" {
		return Payload{}, fmt.Errorf("webhooks: decode body: no type")
	}
	if _, err := time.Parse(time.RFC3339, p.Timestamp); err != nil {
		return Payload{}, fmt.Errorf("webhooks: decode body: timestamp: %w", err)
	}
	if p.Sequence < 0 {
		return Payload{}, fmt.Errorf("webhooks: decode body: negative sequence")
	}
	if len(p.Data) == 0 || p.Data[0] != '{' {
		return Payload{}, fmt.Errorf("webhooks: decode body: data is not a JSON object")
	}
	return p, nil
}

// marshal encodes v compactly without escaping <, > and &, which keeps
// URLs in payloads readable; the signature covers the bytes either way.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
