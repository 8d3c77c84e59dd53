// Package pluginapi is keyd's HTTP API: the validate endpoint that site
// plugins call, the account owners' API and the operator's admin API, served
// by gin. Routes are listed in routes.go; errors map to the contract's codes
// in errors.go.
package pluginapi

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-playground/validator/v10"

	"keyd/jobs"
	"keyd/store"
)

// Store is what the HTTP API needs from keyd's store.
type Store interface {
	Ping(ctx context.Context) error

	LookupKey(hash [32]byte) (store.KeyView, bool)
	RefuseValidations() bool
	LiveReplicas() int
	RecordValidation(v store.KeyView, ok bool, report store.SiteReport, t time.Time)

	CreateAccount(ctx context.Context, actor store.Actor, in store.NewAccount) (store.Created, error)
	GetAccount(ctx context.Context, id string) (store.Account, error)
	ListAccounts(ctx context.Context, q store.AccountQuery) ([]store.Account, error)
	UpdateAccount(ctx context.Context, actor store.Actor, id string, p store.AccountPatch) (store.Account, error)
	AddCredits(ctx context.Context, actor store.Actor, id string, amount int64, reason string) (store.Account, error)
	AliasSlots(ctx context.Context, accountID string) (store.AliasUsage, error)
	SubaccountSlots(ctx context.Context, accountID string) (store.SubaccountUsage, error)
	ResetPrimaryKey(ctx context.Context, actor store.Actor, accountID string, grace time.Duration) (store.Reset, error)

	ListKeys(ctx context.Context, accountID string) ([]store.Key, error)
	UpdatePrimaryKey(ctx context.Context, actor store.Actor, accountID, id string, name *string, scopes []string) (store.Key, error)
	PatchPrimaryKey(ctx context.Context, actor store.Actor, accountID, id string, p store.PrimaryPatch) (store.Key, error)
	RevokeGrace(ctx context.Context, actor store.Actor, accountID, keyID string) (store.Key, error)
	CreateAlias(ctx context.Context, actor store.Actor, accountID string, in store.NewAlias) (store.Created, error)
	UpdateAlias(ctx context.Context, actor store.Actor, accountID, id string, p store.AliasPatch) (store.Key, error)
	SetAliasStatus(ctx context.Context, actor store.Actor, accountID, id string, active bool) (store.Key, error)
	DeleteAlias(ctx context.Context, actor store.Actor, accountID, id string) error
	ListAliases(ctx context.Context, accountID, status, before string, limit int) ([]store.Key, error)
	GetAlias(ctx context.Context, accountID, id string) (store.Key, error)
	ListKeySites(ctx context.Context, accountID, keyID string) ([]store.SiteSeen, error)
	UseSite(ctx context.Context, v store.KeyView, site string, now time.Time) (store.SiteSlots, error)
	ReleaseSite(ctx context.Context, actor store.Actor, accountID, keyID, host string) (store.SiteSlots, error)
	DeactivateSite(ctx context.Context, v *store.KeyView, site string) (bool, store.SiteSlots, error)
	ListUsage(ctx context.Context, accountID, from, to, keyID string) ([]store.UsageRow, error)
	ListAudit(ctx context.Context, accountID, before string, limit int) ([]store.AuditEntry, error)

	Spend(ctx context.Context, v *store.KeyView, units int64, idemKey string) (store.Charge, error)
	GetCreditInfo(ctx context.Context, id string) (store.CreditInfo, error)
	SetLowCreditThreshold(ctx context.Context, actor store.Actor, id string, threshold *int64) error
	CreateSubaccount(ctx context.Context, actor store.Actor, parentID string, in store.NewAccount) (store.Created, error)
	ListSubaccounts(ctx context.Context, parentID, before string, limit int) ([]store.Subaccount, error)
	GetSubaccount(ctx context.Context, parentID, subID string) (store.Subaccount, error)
	SuspendSubaccount(ctx context.Context, actor store.Actor, parentID, subID string, suspend bool) (store.Subaccount, error)
	ListSubaccountKeys(ctx context.Context, parentID, subID string) ([]store.Key, error)
	AllocateCredits(ctx context.Context, actor store.Actor, parentID, subID string, amount int64) (store.Account, error)

	ListPlans(ctx context.Context) ([]store.Plan, error)
	GetPlan(ctx context.Context, name string) (store.Plan, error)
	PutPlan(ctx context.Context, actor store.Actor, p store.Plan) (store.Plan, error)
	UpdatePlan(ctx context.Context, actor store.Actor, name string, ch store.PlanChange) (store.Plan, error)

	WebhookStore // webhooks.go
	ReceiptStore // receipts.go

	// Owner console sessions (plugin-api/console).
	CreateSession(ctx context.Context, accountID, keyID string) (string, error)
	Session(ctx context.Context, token string) (store.Session, error)
	EndSession(ctx context.Context, token string) error
	ListPrimaryKeys(ctx context.Context, accountID string) ([]store.Key, error)
	ListExpiringAliases(ctx context.Context, accountID string, until time.Time, limit int) ([]store.Key, error)
	ListAuditOfKey(ctx context.Context, accountID, keyID, before string, limit int) ([]store.AuditEntry, error)
	CreateSignInLink(ctx context.Context, actor store.Actor, accountID string) (string, time.Time, error)
	SignInLinkAccount(ctx context.Context, token string) (string, error)
	UseSignInLink(ctx context.Context, token string) (store.Session, string, error)
}

// Config is how the API behaves.
type Config struct {
	// AdminToken enables the admin API; empty turns it off (404).
	AdminToken string
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds request bodies; 0 means 64 KiB.
	MaxBodyBytes int64
	// Scopes is the operator's scope catalogue (empty: any name).
	Scopes store.Catalogue
	// Jobs reports the scheduled jobs for GET /admin/v1/jobs; nil shows none.
	Jobs func() []jobs.Status
	// TrustedProxies may set X-Forwarded-For; none by default, so the
	// client address recorded in the audit log is the peer's.
	TrustedProxies []string
	// AllowPrivateWebhooks accepts webhook URLs on loopback and private
	// addresses (--webhook-allow-private, for development and tests).
	AllowPrivateWebhooks bool
	// Metrics, when set, counts requests, validations and credits spent.
	Metrics *Metrics
	// RequestLog counts requests for the log's summary line and decides
	// which get a line of their own (requestlog.go); nil makes one on
	// Logger whose summary only Summarize writes.
	RequestLog *RequestLog
	// DisableCompatSPIO turns off the ShortPixel-style key check at
	// /v2/api-status.php (spio.go), served by default.
	DisableCompatSPIO bool
	// ReceiptLifetime is how long a signed receipt is valid; 0 means
	// DefaultReceiptLifetime.
	ReceiptLifetime time.Duration
	// TestKeys accepts the fixed test keys of testkeys.go (--test-keys);
	// off by default.
	TestKeys bool
}

type server struct {
	store    Store
	log      *slog.Logger
	now      func() time.Time
	validate *validator.Validate
	maxBody  int64
	scopes   store.Catalogue
	jobs     func() []jobs.Status
	limiter  *rateLimiter

	allowPrivateWebhooks bool
	compatSPIO           bool
	testKeys             bool
	receipts             *receipts
	trustedProxies       []string

	metrics        *Metrics
	requestMetrics *requestMetrics // nil without metrics
	requestLogger  *RequestLog

	adminEnabled   bool
	adminTokenHash [32]byte
}

// New builds the HTTP handler. It listens on nothing.
func New(st Store, cfg Config) (http.Handler, error) {
	s := &server{
		store:    st,
		log:      cfg.Logger,
		now:      cfg.Now,
		validate: newValidator(),
		maxBody:  cfg.MaxBodyBytes,
		scopes:   cfg.Scopes,
		jobs:     cfg.Jobs,

		allowPrivateWebhooks: cfg.AllowPrivateWebhooks,
		trustedProxies:       cfg.TrustedProxies,
		compatSPIO:           !cfg.DisableCompatSPIO,
		testKeys:             cfg.TestKeys,
		metrics:              cfg.Metrics,
		requestLogger:        cfg.RequestLog,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.requestLogger == nil {
		s.requestLogger = NewRequestLog(s.log, RequestLogConfig{Now: s.now})
	}
	s.limiter = newRateLimiter(s.now)
	s.receipts = newReceipts(st, cfg.ReceiptLifetime, s.log)
	if s.maxBody == 0 {
		s.maxBody = 64 << 10
	}
	if cfg.AdminToken != "" {
		s.adminEnabled = true
		s.adminTokenHash = sha256.Sum256([]byte(cfg.AdminToken))
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	r.Use(s.requestLog, s.recoverPanic, s.limitBody)
	if err := s.routes(r); err != nil {
		return nil, err
	}
	s.requestLogger.setRoutes(r.Routes())
	if s.metrics != nil {
		s.requestMetrics = newRequestMetrics(s.metrics, r.Routes())
	}
	return r, nil
}
