package webhooks

import (
	"fmt"
	"slices"
	"strings"

	"keyd/store"
)

// eventTypes are the event types sent to endpoints: the contract's
// (API.md, "Webhooks" and the table of additions) and the two about the
// endpoint itself. The names are the store's, which writes the events; the
// store also writes audit-only
// types (account.created, ...) that are never sent. A message for any of
// them carries the event's type, its time to the millisecond and its
// sequence among the account's events, around the event's data (see
// [Payload]); a receiver orders the events about one key by the sequence.
var eventTypes = []string{
	store.EventKeyReset, store.EventKeyRevoked,
	store.EventAliasCreated, store.EventAliasUpdated, store.EventAliasDeactivated,
	store.EventAliasReactivated, store.EventAliasDeleted, store.EventAliasExpiring,
	store.EventAliasExpired,
	store.EventSubaccountCreated,
	store.EventCreditsAllocated, store.EventCreditsLow,
	store.EventKeySpendLimitReached, store.EventSiteActivated, store.EventSiteReleased,
	store.EventWebhookTest, store.EventWebhookDisabled,
}

// MaxPatterns is the most event patterns one endpoint may list. There are
// far fewer event types; the bound only stops absurd requests.
const MaxPatterns = 64

// EventTypes returns every event type keyd sends, in a stable order.
func EventTypes() []string { return slices.Clone(eventTypes) }

// IsEventType reports whether t is an event type keyd sends.
func IsEventType(t string) bool { return slices.Contains(eventTypes, t) }

// isCategory reports whether c is the part before the dot of some event type.
func isCategory(c string) bool {
	for _, t := range eventTypes {
		if cat, _, _ := strings.Cut(t, "."); cat == c {
			return true
		}
	}
	return false
}

// ValidatePattern checks one endpoint event pattern. A pattern is "*" (every
// event), "<category>.*" such as "alias.*" (every event of a category), or
// one exact event type such as "key.reset". Names are case-sensitive, and a
// pattern must name something keyd sends, so that a typo is refused rather
// than silently never matching.
func ValidatePattern(p string) error {
	switch {
	case p == "":
		return invalid(ErrInvalidPattern, "event pattern must not be empty")
	case p == "*":
		return nil
	case strings.HasSuffix(p, ".*"):
		cat := strings.TrimSuffix(p, ".*")
		if strings.Contains(cat, "*") || !isCategory(cat) {
			return invalid(ErrInvalidPattern, "event pattern %s names no known event category (known: %s)", quote(p), categoryList())
		}
		return nil
	case strings.Contains(p, "*"):
		return invalid(ErrInvalidPattern, "event pattern %s is not valid: use \"*\", \"<category>.*\" or an exact event type", quote(p))
	case !IsEventType(p):
		return invalid(ErrInvalidPattern, "unknown event type %s", quote(p))
	}
	return nil
}

// ValidatePatterns checks an endpoint's whole list: one to [MaxPatterns]
// valid patterns. The error names the position of the first bad one.
func ValidatePatterns(ps []string) error {
	if len(ps) == 0 {
		return invalid(ErrInvalidPattern, "events must list at least one event pattern, such as \"*\"")
	}
	if len(ps) > MaxPatterns {
		return invalid(ErrInvalidPattern, "events must list at most %d event patterns", MaxPatterns)
	}
	for i, p := range ps {
		if err := ValidatePattern(p); err != nil {
			return invalid(ErrInvalidPattern, "events[%d]: %s", i, err.Error())
		}
	}
	return nil
}

func categoryList() string {
	var cats []string
	for _, t := range eventTypes {
		cat, _, _ := strings.Cut(t, ".")
		if !slices.Contains(cats, cat) {
			cats = append(cats, cat)
		}
	}
	return fmt.Sprintf("%s.*", strings.Join(cats, ".*, "))
}

// MatchPattern reports whether the event type t is selected by pattern p.
// A malformed pattern matches nothing. A "<category>.*" pattern also
// matches event types of that category added after it was stored.
func MatchPattern(p, t string) bool {
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

// MatchAny reports whether any of an endpoint's patterns selects t, that is
// whether the endpoint should receive an event of type t.
func MatchAny(patterns []string, t string) bool {
	for _, p := range patterns {
		if MatchPattern(p, t) {
			return true
		}
	}
	return false
}
