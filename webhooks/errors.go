package webhooks

import (
	"errors"
	"fmt"
)

// Sentinels for input that an API caller got wrong. Errors wrapping them
// have a message meant for that caller (no package prefix, no internals),
// so the HTTP layer can show err.Error() as it is, for example in the
// "fields" of its error body.
var (
	// ErrInvalidURL marks errors from [ValidateURL].
	ErrInvalidURL = errors.New("invalid webhook URL")
	// ErrInvalidPattern marks errors from [ValidatePattern] and
	// [ValidatePatterns].
	ErrInvalidPattern = errors.New("invalid event pattern")
)

// invalidError is a validation failure: Error is the caller-facing message,
// and errors.Is matches its kind.
type invalidError struct {
	kind error
	msg  string
}

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return e.kind }

func invalid(kind error, format string, args ...any) error {
	return &invalidError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// quote returns s quoted for an error message, cut short so that a huge
// input is not echoed back whole.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q", s[:max]+"...")
	}
	return fmt.Sprintf("%q", s)
}
