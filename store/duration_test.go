package store

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second},
		{"90m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"1.5d", 36 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"0s", 0},
		{"0", 0},
		{"0.000000001s", time.Nanosecond},
		{"007d", 7 * 24 * time.Hour},
		{"3650d", 3650 * 24 * time.Hour},
		{"999999999999d", math.MaxInt64}, // beyond time.Duration: the longest, refused by every bound
	} {
		if got, err := ParseDuration(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "00", "1", "3600", "1h30m", "-1h", "+1h", "1.h", ".5h", "1e3s", "1H", "1 h", " 1h", "1h ", "1w", "1ms",
		"9223372036854775807ns", "1.0000000001s", "1234567890123s", "１h", "1h\x00"} {
		if got, err := ParseDuration(in); err == nil || err.Error() != DurationSyntax {
			t.Errorf("ParseDuration(%q) = %v, %v; want the grammar's refusal", in, got, err)
		}
	}
}

func TestDurationBounds(t *testing.T) {
	for _, tt := range []struct {
		b    DurationBounds
		in   string
		want string // "" = accepted
	}{
		{AliasLifetime, "1m", ""},
		{AliasLifetime, "59s", "must be between 1m and 3650d"},
		{AliasLifetime, "3650d", ""},
		{AliasLifetime, "3650.1d", "must be between 1m and 3650d"},
		{AliasLifetime, "10000d", "must be between 1m and 3650d"},
		{GracePeriod, "0s", ""},
		{GracePeriod, "168h", ""},
		{GracePeriod, "7d", ""},
		{GracePeriod, "7.5d", "must be between 0s and 168h"},
		{GracePeriod, "24", DurationSyntax},
	} {
		_, err := tt.b.Parse(tt.in)
		if got := errString(err); got != tt.want {
			t.Errorf("%s.Parse(%q) error %q, want %q", tt.b.Range, tt.in, got, tt.want)
		}
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if at, err := ExpiryFromTTL(now, "1.5h"); err != nil || !at.Equal(now.Add(90*time.Minute)) {
		t.Errorf("ExpiryFromTTL(1.5h) = %v, %v", at, err)
	}
	var inv *InvalidError
	if _, err := ExpiryFromTTL(now, "30s"); !errors.As(err, &inv) || inv.Fields["ttl"] == "" {
		t.Errorf("ExpiryFromTTL(30s) error = %v, want one naming ttl", err)
	}
	// expires_at has the ttl's floor and ceiling.
	for _, tt := range []struct {
		at time.Duration
		ok bool
	}{{time.Second, false}, {59 * time.Second, false}, {time.Minute, true}, {3650 * 24 * time.Hour, true}, {3651 * 24 * time.Hour, false}, {-time.Hour, false}} {
		err := CheckExpiresAt(now, now.Add(tt.at))
		if (err == nil) != tt.ok || (err != nil && (!errors.As(err, &inv) || inv.Fields["expires_at"] == "")) {
			t.Errorf("CheckExpiresAt(now + %v) = %v, want ok %v", tt.at, err, tt.ok)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var referenceGrammar = regexp.MustCompile(`^(0|[0-9]{1,12}(\.[0-9]{1,9})?[smhd])$`)

// FuzzParseDuration checks ParseDuration against exact rational arithmetic:
// it accepts exactly the grammar, and what it accepts is the number times
// its unit (saturated at the longest time.Duration).
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"36h", "90m", "7d", "1.5d", "0s", "3650d", "3651d", "-1d", "d", "1h30m", "24", "0",
		"2562047h", "2562048h", "999999999999d", "0.000000001s", "1.5", "9223372036854775807ns", "1e3h", "", "\x00", "7D", " 7d"} {
		f.Add(s)
	}
	units := map[byte]int64{'s': int64(time.Second), 'm': int64(time.Minute), 'h': int64(time.Hour), 'd': int64(24 * time.Hour)}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if !referenceGrammar.MatchString(s) {
			if err == nil {
				t.Fatalf("ParseDuration(%q) = %v, outside the grammar", s, d)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseDuration(%q) refused a duration in the grammar: %v", s, err)
		}
		if s == "0" {
			if d != 0 {
				t.Fatalf(`ParseDuration("0") = %v`, d)
			}
			return
		}
		r, ok := new(big.Rat).SetString(strings.TrimRight(s, "smhd"))
		if !ok {
			t.Fatalf("reference cannot read %q", s)
		}
		r.Mul(r, new(big.Rat).SetInt64(units[s[len(s)-1]]))
		if !r.IsInt() {
			t.Fatalf("%q is not a whole number of nanoseconds", s)
		}
		want := r.Num()
		if want.Cmp(big.NewInt(math.MaxInt64)) > 0 {
			want = big.NewInt(math.MaxInt64)
		}
		if want.Int64() != int64(d) {
			t.Fatalf("ParseDuration(%q) = %d ns, want %s", s, int64(d), want)
		}
	})
}

func TestFormatDurationReadsBack(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * 24 * time.Hour: "30d", 36 * time.Hour: "36h", 90 * time.Minute: "90m", 90 * time.Second: "90s", 0: "0s",
	} {
		got := FormatDuration(d)
		back, err := ParseDuration(got)
		if got != want || err != nil || back != d {
			t.Errorf("FormatDuration(%v) = %q, reads back as %v (%v); want %q", d, got, back, err, want)
		}
	}
}
