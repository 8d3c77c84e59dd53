package webhooks

import (
	"fmt"
	"strings"

	"keyd/store"
)

// MaxPatterns is the most event patterns one endpoint may list. There are
// far fewer event types; the bound only stops absurd requests.
const MaxPatterns = 64

// ValidatePattern checks one endpoint event pattern before it is stored. A
// pattern is "*" (every event), "<category>.*" such as "alias.*" (every
// event of a category), or one exact event type such as "key.reset", as
// [store.MatchEventPattern] matches them against the event types of
// [store.WebhookEventTypes]. Names are case-sensitive, and a
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
		if strings.Contains(cat, "*") || !store.IsWebhookEventCategory(cat) {
			return invalid(ErrInvalidPattern, "event pattern %s names no known event category (known: %s)", quote(p), categoryList())
		}
		return nil
	case strings.Contains(p, "*"):
		return invalid(ErrInvalidPattern, "event pattern %s is not valid: use \"*\", \"<category>.*\" or an exact event type", quote(p))
	case !store.IsWebhookEventType(p):
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
	return fmt.Sprintf("%s.*", strings.Join(store.WebhookEventCategories(), ".*, "))
}
