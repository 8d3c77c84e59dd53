package webhooks

import (
	"errors"
	"strings"
	"testing"

	"keyd/store"
)

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		p       string
		ok      bool
		errPart string
	}{
		{"*", true, ""},
		{"key.reset", true, ""},
		{"alias.*", true, ""},
		{"key.*", true, ""},
		{"subaccount.*", true, ""},
		{"credits.*", true, ""},
		{"webhook.*", true, ""},
		{"webhook.test", true, ""},
		{"webhook.disabled", true, ""},
		{"", false, "empty"},
		{"**", false, "not valid"},
		{"*.*", false, "category"},
		{"*.reset", false, "not valid"},
		{"alias.**", false, "category"},
		{"alias*", false, "not valid"},
		{"al*.created", false, "not valid"},
		{"alias.", false, "unknown event type"},
		{".*", false, "category"},
		{"alias", false, "unknown event type"},
		{"alias.renamed", false, "unknown event type"},
		{"Alias.*", false, "category"},
		{"KEY.RESET", false, "unknown event type"},
		{" key.reset", false, "unknown event type"},
		{"foo.*", false, "known: key.*, alias.*, subaccount.*, credits.*, site.*, webhook.*"},
		{strings.Repeat("a", 1000), false, `..."`},
	}
	for _, tt := range tests {
		t.Run(quote(tt.p), func(t *testing.T) {
			err := ValidatePattern(tt.p)
			if tt.ok != (err == nil) {
				t.Fatalf("ValidatePattern(%q) = %v, want ok=%v", tt.p, err, tt.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("error %v does not wrap ErrInvalidPattern", err)
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Fatalf("error %q does not mention %q", err, tt.errPart)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error is %d bytes long; echoes too much input", len(err.Error()))
			}
		})
	}
}

func TestValidatePatterns(t *testing.T) {
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = "*"
	}
	tests := []struct {
		name    string
		ps      []string
		errPart string // "" means valid
	}{
		{"typical", []string{"key.reset", "alias.*"}, ""},
		{"everything", []string{"*"}, ""},
		{"at the limit", many[:MaxPatterns], ""},
		{"nil", nil, "at least one"},
		{"empty", []string{}, "at least one"},
		{"over the limit", many, "at most 64"},
		{"second bad", []string{"key.reset", "alias.renamed"}, `events[1]: unknown event type "alias.renamed"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePatterns(tt.ps)
			if tt.errPart == "" {
				if err != nil {
					t.Fatalf("ValidatePatterns = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPattern) || !strings.Contains(err.Error(), tt.errPart) {
				t.Fatalf("ValidatePatterns = %v, want ErrInvalidPattern mentioning %q", err, tt.errPart)
			}
		})
	}
}

// FuzzMatchEventPattern checks store.MatchEventPattern against its definition
// and against ValidatePattern: a pattern that validates matches an event type exactly
// when it is "*", equal to it, or "<c>.*" with the type in category c.
func FuzzMatchEventPattern(f *testing.F) {
	for _, p := range []string{"*", "key.reset", "alias.*", "", ".*", "*.*", "alias.**", "a*b", "alias.", "webhook.*"} {
		for _, e := range []string{"key.reset", "alias.created", "alias.", "", "webhook.test", "*"} {
			f.Add(p, e)
		}
	}
	f.Fuzz(func(t *testing.T, p, e string) {
		got := store.MatchEventPattern(p, e)
		if got && !store.MatchEventPatterns([]string{"key.never", p}, e) {
			t.Fatalf("MatchEventPatterns disagrees with MatchEventPattern(%q, %q)", p, e)
		}
		if p == "*" && !got {
			t.Fatalf("MatchEventPattern(*, %q) = false", e)
		}
		if !strings.Contains(p, "*") && got != (p == e && p != "") {
			t.Fatalf("MatchEventPattern(%q, %q) = %v for an exact pattern", p, e, got)
		}
		if strings.Count(p, "*") > 1 && got {
			t.Fatalf("MatchEventPattern(%q, %q) = true for a pattern with several *", p, e)
		}
		if ValidatePattern(p) != nil {
			return
		}
		var want bool
		switch {
		case p == "*":
			want = true
		case strings.HasSuffix(p, ".*"):
			cat, rest, ok := strings.Cut(e, ".")
			want = ok && rest != "" && cat+".*" == p
		default:
			want = p == e
		}
		if got != want {
			t.Fatalf("MatchEventPattern(%q, %q) = %v, want %v", p, e, got, want)
		}
	})
}
