package store

import (
	"encoding/json"
	"time"
)

// Event payloads: the data of every event, as the audit log shows it and
// as webhook receivers get it inside a WebhookPayload. This file is their
// wire format, in one place: a field's JSON name, its order and when it is
// left out are what receivers (the WordPress plugin among them) depend on,
// so fields are declared in the order of their JSON names, and
// testdata/events.golden pins the bytes. Data never holds a key or a key's
// hash; a key's hint is fine.

// eventData is a typed event payload; Tx.event takes nothing else.
type eventData interface{ eventData() }

// AccountCreatedData is account.created.
type AccountCreatedData struct {
	AccountID string  `json:"account_id"`
	Credits   int64   `json:"credits"`
	Hint      string  `json:"hint"`
	KeyID     string  `json:"key_id"`
	Name      string  `json:"name"`
	ParentID  *string `json:"parent_id"`
	Plan      string  `json:"plan"`
}

// AccountUpdatedData is account.updated: only what changed is present.
type AccountUpdatedData struct {
	AccountID               string         `json:"account_id"`
	AliasLimitOverride      Changed[int]   `json:"alias_limit_override,omitzero"`
	LowCreditThreshold      Changed[int64] `json:"low_credit_threshold,omitzero"`
	Plan                    *string        `json:"plan,omitempty"`
	Status                  *string        `json:"status,omitempty"`
	SubaccountLimitOverride Changed[int]   `json:"subaccount_limit_override,omitzero"`
}

// Changed is a field of a change that may be set to null: left out when
// not Set, null when set to nil.
type Changed[T any] struct {
	Set bool
	To  *T
}

// changedTo is a Changed set to v (nil for null).
func changedTo[T any](v *T) Changed[T] { return Changed[T]{Set: true, To: v} }

// IsZero reports whether the field is left out.
func (c Changed[T]) IsZero() bool { return !c.Set }

// MarshalJSON writes the value, or null.
func (c Changed[T]) MarshalJSON() ([]byte, error) { return json.Marshal(c.To) }

// CreditsAddedData is credits.added.
type CreditsAddedData struct {
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
	Credits   int64  `json:"credits"`
	Reason    string `json:"reason"`
}

// CreditsLowData is credits.low.
type CreditsLowData struct {
	AccountID string `json:"account_id"`
	Credits   int64  `json:"credits"`
	Threshold int64  `json:"threshold"`
}

// CreditsAllocatedData is credits.allocated, told to the parent and to the
// subaccount (AccountID says which).
type CreditsAllocatedData struct {
	AccountID         string `json:"account_id"`
	Amount            int64  `json:"amount"`
	ParentCredits     int64  `json:"parent_credits"`
	ParentID          string `json:"parent_id"`
	SubaccountCredits int64  `json:"subaccount_credits"`
	SubaccountID      string `json:"subaccount_id"`
}

// PlanUpdatedData is plan.updated, an event of no account.
type PlanUpdatedData struct {
	AliasLimit         *int   `json:"alias_limit"`
	Name               string `json:"name"`
	RateLimitPerMinute *int   `json:"rate_limit_per_minute"`
	SubaccountLimit    *int   `json:"subaccount_limit"`
}

// KeyResetData is key.reset: the new primary key, and the one it replaces.
type KeyResetData struct {
	AccountID string          `json:"account_id"`
	Hint      string          `json:"hint"`
	KeyID     string          `json:"key_id"`
	Name      string          `json:"name"`
	Previous  PreviousKeyData `json:"previous"`
	Status    string          `json:"status"`
	Type      string          `json:"type"`
}

// PreviousKeyData is the key a reset replaced, valid until the end of its
// grace period (RFC 3339).
type PreviousKeyData struct {
	Hint       string `json:"hint"`
	ID         string `json:"id"`
	ValidUntil string `json:"valid_until"`
}

// KeyRevokedData is key.revoked.
type KeyRevokedData struct {
	AccountID  string     `json:"account_id"`
	Hint       string     `json:"hint"`
	KeyID      string     `json:"key_id"`
	Name       string     `json:"name"`
	Reason     string     `json:"reason"`
	Status     string     `json:"status"`
	Type       string     `json:"type"`
	ValidUntil *time.Time `json:"valid_until"`
}

// KeyUpdatedData is key.updated (the primary key).
type KeyUpdatedData struct {
	AccountID  string      `json:"account_id"`
	Hint       string      `json:"hint"`
	KeyID      string      `json:"key_id"`
	Name       string      `json:"name"`
	Scopes     []string    `json:"scopes"`
	SpendLimit *SpendLimit `json:"spend_limit"`
	Type       string      `json:"type"`
}

// AliasData is what every alias.* event carries: enough for a receiver to
// act.
type AliasData struct {
	AccountID    string      `json:"account_id"`
	AllowedSites []string    `json:"allowed_sites"`
	ExpiresAt    *time.Time  `json:"expires_at"`
	Hint         string      `json:"hint"`
	KeyID        string      `json:"key_id"`
	MaxSites     *int        `json:"max_sites"`
	Name         string      `json:"name"`
	Scopes       []string    `json:"scopes"`
	SpendLimit   *SpendLimit `json:"spend_limit"`
	Status       string      `json:"status"`
	Type         string      `json:"type"`
}

// aliasData is the data of an alias.* event about k, with its status at now.
func aliasData(k Key, now time.Time) AliasData {
	return AliasData{AccountID: k.AccountID, AllowedSites: k.AllowedSites, ExpiresAt: k.ExpiresAt, Hint: k.Hint,
		KeyID: k.ID, MaxSites: k.MaxSites, Name: k.Name, Scopes: k.Scopes, SpendLimit: k.SpendLimit,
		Status: k.StatusAt(now), Type: k.Type}
}

// KeySpendLimitReachedData is key.spend_limit_reached.
type KeySpendLimitReachedData struct {
	AccountID  string    `json:"account_id"`
	Hint       string    `json:"hint"`
	KeyID      string    `json:"key_id"`
	Name       string    `json:"name"`
	SpendLimit Allowance `json:"spend_limit"`
	Type       string    `json:"type"`
}

// SiteData is site.activated and site.released (which has a reason).
type SiteData struct {
	AccountID string    `json:"account_id"`
	Hint      string    `json:"hint"`
	KeyID     string    `json:"key_id"`
	Name      string    `json:"name"`
	Reason    string    `json:"reason,omitempty"`
	Site      string    `json:"site"`
	Sites     SiteSlots `json:"sites"`
	Type      string    `json:"type"`
}

// SubaccountCreatedData is subaccount.created, told to the parent.
type SubaccountCreatedData struct {
	AccountID    string `json:"account_id"`
	Credits      int64  `json:"credits"`
	Hint         string `json:"hint"`
	KeyID        string `json:"key_id"`
	Name         string `json:"name"`
	Plan         string `json:"plan"`
	SubaccountID string `json:"subaccount_id"`
}

// SubaccountStatusData is subaccount.suspended and subaccount.unsuspended,
// told to the parent and to the subaccount (AccountID says which).
type SubaccountStatusData struct {
	AccountID    string `json:"account_id"`
	ParentID     string `json:"parent_id"`
	Status       string `json:"status"`
	SubaccountID string `json:"subaccount_id"`
}

// SignInLinkData is console.sign_in_link; the link itself is never logged.
type SignInLinkData struct {
	AccountID string `json:"account_id"`
	ExpiresAt string `json:"expires_at"`
}

// WebhookData is webhook.test and webhook.deleted.
type WebhookData struct {
	AccountID string `json:"account_id"`
	WebhookID string `json:"webhook_id"`
}

// WebhookCreatedData is webhook.created.
type WebhookCreatedData struct {
	AccountID   string   `json:"account_id"`
	Description string   `json:"description"`
	Events      []string `json:"events"`
	WebhookID   string   `json:"webhook_id"`
}

// WebhookUpdatedData is webhook.updated: the names of the fields changed.
type WebhookUpdatedData struct {
	AccountID string   `json:"account_id"`
	Changed   []string `json:"changed"`
	WebhookID string   `json:"webhook_id"`
}

// WebhookSecretRotatedData is webhook.secret_rotated.
type WebhookSecretRotatedData struct {
	AccountID               string `json:"account_id"`
	PreviousSecretExpiresAt string `json:"previous_secret_expires_at"`
	WebhookID               string `json:"webhook_id"`
}

// WebhookDisabledData is webhook.disabled, sent to the account's other
// endpoints; times are RFC 3339.
type WebhookDisabledData struct {
	AccountID    string `json:"account_id"`
	Description  string `json:"description"`
	DisabledAt   string `json:"disabled_at"`
	FailingSince string `json:"failing_since"`
	Reason       string `json:"reason"`
	WebhookID    string `json:"webhook_id"`
}

func (AccountCreatedData) eventData()       {}
func (AccountUpdatedData) eventData()       {}
func (CreditsAddedData) eventData()         {}
func (CreditsLowData) eventData()           {}
func (CreditsAllocatedData) eventData()     {}
func (PlanUpdatedData) eventData()          {}
func (KeyResetData) eventData()             {}
func (KeyRevokedData) eventData()           {}
func (KeyUpdatedData) eventData()           {}
func (AliasData) eventData()                {}
func (KeySpendLimitReachedData) eventData() {}
func (SiteData) eventData()                 {}
func (SubaccountCreatedData) eventData()    {}
func (SubaccountStatusData) eventData()     {}
func (SignInLinkData) eventData()           {}
func (WebhookData) eventData()              {}
func (WebhookCreatedData) eventData()       {}
func (WebhookUpdatedData) eventData()       {}
func (WebhookSecretRotatedData) eventData() {}
func (WebhookDisabledData) eventData()      {}
