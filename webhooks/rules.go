package webhooks

import (
	"time"

	"keyd/store"
)

// RotationOverlap is how long an endpoint's previous secret keeps signing
// messages, alongside the new one, after a rotation.
const RotationOverlap = 24 * time.Hour

// Rules are keyd's delivery rules as the store's fan-out applies them: only
// the event types keyd sends (audit-only events such as account.created
// are never delivered), selected by the endpoint's patterns, with the body
// built once by [NewBody] from the event's type, sequence, time and data.
func Rules() store.MessageRules {
	return store.MessageRules{
		Delivered: IsEventType,
		Match:     MatchAny,
		Body: func(e store.Event) ([]byte, error) {
			return NewBody(e.Type, e.Sequence, e.CreatedAt, e.Data)
		},
	}
}
