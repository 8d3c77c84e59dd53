package store

import "errors"

// The errors the store returns, all of them: the HTTP layer maps each to the
// contract's status and code in one place (plugin-api/errors.go).

// Domain rules.
var (
	ErrNotFound            = errors.New("not found")
	ErrNameTaken           = errors.New("name already taken")
	ErrAliasLimit          = errors.New("alias limit reached")
	ErrSubaccountLimit     = errors.New("subaccount limit reached")
	ErrInsufficientCredits = errors.New("insufficient credits")
	ErrSubaccountNesting   = errors.New("subaccounts cannot have subaccounts")
	ErrScopeExceeds        = errors.New("scopes exceed the primary key's")
	ErrAliasGone           = errors.New("alias deleted")
	// ErrSuspendedByOperator refuses a parent lifting a suspension the
	// operator made.
	ErrSuspendedByOperator = errors.New("suspended by the operator")

	// Outcomes of KeyView.Check.
	ErrKeyRevoked       = errors.New("key revoked")
	ErrKeyExpired       = errors.New("key expired")
	ErrKeyInactive      = errors.New("key inactive")
	ErrAccountSuspended = errors.New("account suspended")
)

// InvalidError reports input that breaks a domain rule. Fields maps a request
// field name to what is wrong with it.
type InvalidError struct {
	Message string
	Fields  map[string]string
}

func (e *InvalidError) Error() string { return e.Message }

func invalidField(field, msg string) error {
	return &InvalidError{Message: field + ": " + msg, Fields: map[string]string{field: msg}}
}

// ErrKeySpendLimit is a charge over the key's own spend limit; the error
// returned is a *KeySpendLimitError.
var ErrKeySpendLimit = errors.New("key spend limit reached")

// KeySpendLimitError refuses a charge the key's limit cannot cover: nothing
// was charged.
type KeySpendLimitError struct{ Allowance Allowance }

func (e *KeySpendLimitError) Error() string { return ErrKeySpendLimit.Error() }
func (e *KeySpendLimitError) Is(target error) bool {
	return target == ErrKeySpendLimit
}

// ErrSiteRequired is a validation without a site of a key that counts its
// sites.
var ErrSiteRequired = errors.New("site required")

// ErrSiteLimit is a new site for a key whose slots are all taken; the error
// returned is a *SiteLimitError.
var ErrSiteLimit = errors.New("site limit reached")

// SiteLimitError refuses a new site: Used of Limit slots are taken.
type SiteLimitError struct{ Used, Limit int }

func (e *SiteLimitError) Error() string        { return ErrSiteLimit.Error() }
func (e *SiteLimitError) Is(target error) bool { return target == ErrSiteLimit }

// ErrIdempotencyMismatch is a replayed idempotency key with other units.
var ErrIdempotencyMismatch = errors.New("idempotency key reused with different units")

// ErrClosed answers charges made while the store closes.
var ErrClosed = errors.New("store: closed")

// ErrWebhookLimit means the account already has MaxWebhooksPerAccount endpoints.
var ErrWebhookLimit = errors.New("webhook limit reached")

// ErrRealAccounts is returned by Seed when the database holds accounts that
// were not made by Seed and the caller did not force it.
var ErrRealAccounts = errors.New("the database holds real (non-synthetic) accounts")

// ErrCopyDestinationNotEmpty is a copy refused because the destination
// already holds accounts.
var ErrCopyDestinationNotEmpty = errors.New("store: copy: the destination is not empty")

// ErrSecretKeyRequired is a PostgreSQL database opened without a secret
// key: there is no file beside it to keep one in, and every replica must
// seal with the same key.
var ErrSecretKeyRequired = errors.New("store: on PostgreSQL the secret key must be given (--secret-key or KEYD_SECRET_KEY), the same on every replica")

// ErrSecretKeyMismatch means the master key is not the one the database's
// secrets were sealed with.
var ErrSecretKeyMismatch = errors.New("store: the secret key does not match the one this database's webhook secrets were sealed with")

// ErrStorageUnavailable is a write the database could not take because of
// where it lives, not because of what was asked: the disk is full, the file
// or its directory is read-only, the operating system failed the I/O, or
// the PostgreSQL server cannot be reached. Nothing of the change was kept,
// and the same request may succeed once the database is back; the
// in-memory key index still answers validations. The engine's error is
// wrapped alongside it for the log.
var ErrStorageUnavailable = errors.New("store: storage unavailable")
