package store

import (
	"encoding/json"
	"time"

	"keyd/store/keyindex"
)

// Key types and statuses, as the HTTP contract names them.
const (
	KeyTypePrimary = "primary"
	KeyTypeAlias   = "alias"

	KeyActive   = keyindex.Active
	KeyInactive = keyindex.Inactive
	KeyExpired  = keyindex.Expired
	KeyRevoked  = keyindex.Revoked

	AccountActive    = keyindex.AccountActive
	AccountSuspended = keyindex.AccountSuspended
)

// Actor types recorded with every event.
const (
	ActorPrimary  = "primary"
	ActorAlias    = "alias"
	ActorOperator = "operator"
	ActorSystem   = "system"
)

// Plan is a set of limits an account is on.
type Plan struct {
	Name string `json:"name"`
	// AliasLimit is nil when the limit is set per account (enterprise).
	AliasLimit *int `json:"alias_limit"`
	// SubaccountLimit is nil when the limit is set per account (enterprise).
	SubaccountLimit *int `json:"subaccount_limit"`
	// RateLimitPerMinute is nil for unlimited.
	RateLimitPerMinute *int      `json:"rate_limit_per_minute"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// Account owns keys and a credit pool.
type Account struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	Email              string    `json:"email"`
	Plan               string    `json:"plan"`
	Status             string    `json:"status"`
	Credits            int64     `json:"credits"`
	ParentID           *string   `json:"parent_id"`
	AliasLimitOverride *int      `json:"alias_limit_override"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
	// SubaccountLimitOverride, when set, replaces the plan's subaccount limit.
	SubaccountLimitOverride *int `json:"subaccount_limit_override"`
}

// Key is a primary key or an alias, without its secret.
type Key struct {
	ID           string     `json:"id"`
	AccountID    string     `json:"account_id"`
	Type         string     `json:"type"`
	Name         string     `json:"name"`
	Hint         string     `json:"hint"`
	Status       string     `json:"status"`
	Scopes       []string   `json:"scopes"`
	AllowedSites []string   `json:"allowed_sites"`
	ExpiresAt    *time.Time `json:"expires_at"`
	// ValidUntil is set on a primary key that was reset with a grace period.
	ValidUntil *time.Time `json:"valid_until,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// SpendLimit is the key's own cap within the pool; nil for none.
	SpendLimit *SpendLimit `json:"spend_limit"`
	// MaxSites is how many sites may use the key; nil for any number.
	MaxSites *int `json:"max_sites"`
	// ReleaseAfter frees the slot of a site not seen for this long; nil
	// for never. (The API shows it in the duration grammar.)
	ReleaseAfter *time.Duration `json:"-"`

	spend spendState // what it spent against SpendLimit (AllowanceAt)
	hash  [32]byte   // finds the key's record in the index (withLastUse)
}

// AllowanceAt is the key's spend limit with what it spent at t; nil
// without a limit.
func (k *Key) AllowanceAt(t time.Time) *Allowance {
	if k.SpendLimit == nil {
		return nil
	}
	a := allowanceAt(*k.SpendLimit, k.spend, t)
	return &a
}

// StatusAt is the key's status as validation sees it at t (see KeyStatus).
func (k *Key) StatusAt(t time.Time) string {
	return KeyStatus(k.Status, unixOrZero(k.ExpiresAt), unixOrZero(k.ValidUntil), t)
}

// InGraceAt reports whether k is a primary key replaced by a reset that
// still validates at t, until its ValidUntil.
func (k *Key) InGraceAt(t time.Time) bool {
	return k.ValidUntil != nil && k.StatusAt(t) == KeyActive
}

// KeyStatus is the one rule for a key's status at now (keyindex.Status),
// used by validation, the key lists, the command line and webhook payloads
// alike. stored is the status in the database; expiresAt and validUntil are
// unix seconds (0 = none).
func KeyStatus(stored string, expiresAt, validUntil int64, now time.Time) string {
	return keyindex.Status(stored, expiresAt, validUntil, now)
}

func unixOrZero(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

// Actor is who caused a change: a key of the account, the operator, or keyd.
type Actor struct {
	Type  string // ActorPrimary, ActorAlias, ActorOperator or ActorSystem
	KeyID string // for key actors
	IP    string
	// Channel is where the action came from when not the HTTP API:
	// ChannelConsole for the owner console; "" otherwise.
	Channel string
}

// ChannelConsole marks actions an owner took in the console.
const ChannelConsole = "console"

// OperatorActor is the operator acting through the admin API or the CLI.
func OperatorActor(ip string) Actor { return Actor{Type: ActorOperator, IP: ip} }

// SystemActor is keyd itself (jobs).
var SystemActor = Actor{Type: ActorSystem}

// Event is one row of the append-only event log.
type Event struct {
	Seq int64 `json:"-"`
	// Sequence counts the account's events in commit order (1, 2, ...);
	// 0 for an event of no account.
	Sequence  int64           `json:"sequence,omitempty"`
	ID        string          `json:"id"`
	AccountID string          `json:"account_id,omitempty"`
	Type      string          `json:"type"`
	Actor     Actor           `json:"-"`
	TargetID  string          `json:"target_id,omitempty"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}
