package store

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"time"
)

// Durations are written one way wherever keyd reads one (an alias's ttl, a
// reset's grace_period, the command line's --ttl): a whole or decimal
// number and one unit, s, m, h or d ("90s", "1.5h", "7d"). A number without
// a unit is refused, because 3600 could be seconds, minutes or days; only
// "0" needs none, being the same in every unit.

// DurationSyntax is what a duration that is not in the grammar is told.
const DurationSyntax = `must be a number and a unit (s, m, h or d), such as "90m", "1.5h" or "7d"`

var errDurationSyntax = errors.New(DurationSyntax)

// durationPattern: at most 12 digits before the point and 9 after (a
// nanosecond), so parsing never has to look at more.
var durationPattern = regexp.MustCompile(`^([0-9]{1,12})(?:\.([0-9]{1,9}))?([smhd])$`)

var durationUnits = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}

// ParseDuration reads a duration in keyd's grammar. A duration longer than
// time.Duration can hold reads as the longest one, which is beyond every
// bound keyd has, so the caller's bounds refuse it.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	m := durationPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, errDurationSyntax
	}
	unit := durationUnits[m[3]]
	whole, _ := strconv.ParseInt(m[1], 10, 64) // at most 12 digits: fits
	var frac time.Duration
	if m[2] != "" {
		// Every unit is a whole number of seconds, so unit/10^len(digits) is
		// exact for up to 9 digits, and the product stays below one unit.
		digits, _ := strconv.ParseInt(m[2], 10, 64)
		frac = time.Duration(digits) * (unit / time.Duration(math.Pow10(len(m[2]))))
	}
	if whole > int64((math.MaxInt64-frac)/unit) {
		return math.MaxInt64, nil
	}
	return time.Duration(whole)*unit + frac, nil
}

// DurationBounds are the shortest and longest a duration field takes, and
// how to say so.
type DurationBounds struct {
	Min, Max time.Duration
	// Range says the bounds in the grammar's terms: "between 1m and 3650d".
	Range string
}

var (
	// AliasLifetime bounds an alias's ttl, and how far ahead its expires_at
	// may be.
	AliasLifetime = DurationBounds{Min: time.Minute, Max: 3650 * 24 * time.Hour, Range: "between 1m and 3650d"}
	// GracePeriod bounds how long a reset key keeps working.
	GracePeriod = DurationBounds{Min: 0, Max: MaxGracePeriod, Range: "between 0s and 168h"}
	// ReceiptLifetime bounds how long a signed validation receipt is valid
	// (keyd serve --receipt-ttl).
	ReceiptLifetime = DurationBounds{Min: time.Hour, Max: 30 * 24 * time.Hour, Range: "between 1h and 30d"}
)

// Parse reads s in the duration grammar and checks it is within b. The
// error is the message for the field, in the user's terms.
func (b DurationBounds) Parse(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < b.Min || d > b.Max {
		return 0, errors.New("must be " + b.Range)
	}
	return d, nil
}

// FormatDuration writes d in the duration grammar, in the largest unit that
// divides it ("30d", "36h", "90s"), so that reading it back gives d.
func FormatDuration(d time.Duration) string {
	secs := int64(d / time.Second)
	for _, u := range []struct {
		secs int64
		unit string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}} {
		if secs != 0 && secs%u.secs == 0 {
			return strconv.FormatInt(secs/u.secs, 10) + u.unit
		}
	}
	return strconv.FormatInt(secs, 10) + "s"
}

// ExpiryFromTTL is the expiry of an alias created now with the given ttl, to
// the second; the error is an InvalidError naming ttl.
func ExpiryFromTTL(now time.Time, ttl string) (time.Time, error) {
	d, err := AliasLifetime.Parse(ttl)
	if err != nil {
		return time.Time{}, invalidField("ttl", err.Error())
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

// CheckExpiresAt applies the ttl's bounds to an expiry given as a time: at
// least a minute and at most 3650 days after now. The error is an
// InvalidError naming expires_at.
func CheckExpiresAt(now, at time.Time) error {
	if d := at.Sub(now); d < AliasLifetime.Min || d > AliasLifetime.Max {
		return invalidField("expires_at", "must be between 1 minute and 3650 days from now")
	}
	return nil
}
