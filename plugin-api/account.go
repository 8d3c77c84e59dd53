package pluginapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// planBody is a plan as shown inside an account: the one shape of an
// account's plan in every owner and operator answer (validate alone, by
// contract, gives just the name).
type planBody struct {
	Name               string `json:"name"`
	AliasLimit         *int   `json:"alias_limit"`
	RateLimitPerMinute *int   `json:"rate_limit_per_minute"`
	SubaccountLimit    *int   `json:"subaccount_limit"`
}

func planOf(p store.Plan) planBody {
	return planBody{Name: p.Name, AliasLimit: p.AliasLimit, RateLimitPerMinute: p.RateLimitPerMinute,
		SubaccountLimit: p.SubaccountLimit}
}

// accountBody is an account as its owner sees it.
type accountBody struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Email   string   `json:"email"`
	Status  string   `json:"status"`
	Plan    planBody `json:"plan"`
	Credits int64    `json:"credits"`
	// CreditsSpent and LowCreditThreshold describe the pool beyond its size.
	CreditsSpent       int64                 `json:"credits_spent"`
	LowCreditThreshold int64                 `json:"low_credit_threshold"`
	Aliases            store.AliasUsage      `json:"aliases"`
	Subaccounts        store.SubaccountUsage `json:"subaccounts"`
	ParentID           *string               `json:"parent_id"`
	CreatedAt          time.Time             `json:"created_at"`
}

// adminAccountBody adds what only the operator sees.
type adminAccountBody struct {
	accountBody
	AliasLimitOverride *int      `json:"alias_limit_override"`
	UpdatedAt          time.Time `json:"updated_at"`
	// SubaccountLimitOverride replaces the plan's subaccount limit when set.
	SubaccountLimitOverride *int `json:"subaccount_limit_override"`
}

func (s *server) describeAccount(ctx context.Context, a store.Account) (accountBody, error) {
	plan, err := s.store.GetPlan(ctx, a.Plan)
	if err != nil {
		return accountBody{}, err
	}
	slots, err := s.store.AliasSlots(ctx, a.ID)
	if err != nil {
		return accountBody{}, err
	}
	subs, err := s.store.SubaccountSlots(ctx, a.ID)
	if err != nil {
		return accountBody{}, err
	}
	pool, err := s.store.GetCreditInfo(ctx, a.ID)
	if err != nil {
		return accountBody{}, err
	}
	return accountBody{
		ID: a.ID, Name: a.Name, Email: a.Email, Status: a.Status,
		Plan:    planOf(plan),
		Credits: a.Credits, CreditsSpent: pool.Spent, LowCreditThreshold: pool.LowCreditThreshold,
		Aliases: slots, Subaccounts: subs, ParentID: a.ParentID, CreatedAt: a.CreatedAt,
	}, nil
}

func (s *server) describeAccountForAdmin(ctx context.Context, a store.Account) (adminAccountBody, error) {
	body, err := s.describeAccount(ctx, a)
	return adminAccountBody{accountBody: body, AliasLimitOverride: a.AliasLimitOverride, UpdatedAt: a.UpdatedAt,
		SubaccountLimitOverride: a.SubaccountLimitOverride}, err
}

// getAccount is GET /v1/account.
func (s *server) getAccount(c *gin.Context) {
	acc, err := s.store.GetAccount(c.Request.Context(), owner(c).AccountID)
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := s.describeAccount(c.Request.Context(), acc)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, body)
}

type patchAccountRequest struct {
	LowCreditThreshold *int64 `json:"low_credit_threshold" validate:"omitnil,min=0"`
}

// patchAccount is PATCH /v1/account: the owner's own settings. Today that is
// the low-credit threshold (null: 10% of the last top-up or allocation).
func (s *server) patchAccount(c *gin.Context) {
	var req patchAccountRequest
	raw, err := s.bindJSONRaw(c, &req)
	if err != nil {
		writeError(c, err)
		return
	}
	if _, ok := raw["low_credit_threshold"]; !ok {
		writeError(c, fieldError("low_credit_threshold", "is the only field that can be changed here"))
		return
	}
	ctx := c.Request.Context()
	id := owner(c).AccountID
	if err := s.store.SetLowCreditThreshold(ctx, ownerActor(c), id, req.LowCreditThreshold); err != nil {
		writeError(c, err)
		return
	}
	s.getAccount(c)
}

type resetKeyRequest struct {
	// GracePeriod is a duration string ("24h", "7d"); see durationString.
	GracePeriod json.RawMessage `json:"grace_period"`
}

type previousKeyBody struct {
	ID         string    `json:"id"`
	Hint       string    `json:"hint"`
	ValidUntil time.Time `json:"valid_until"`
}

type resetKeyResponse struct {
	Key      string          `json:"key"`
	KeyID    string          `json:"key_id"`
	Hint     string          `json:"hint"`
	Previous previousKeyBody `json:"previous"`
}

// parseGrace reads grace_period: absent or null is 0 (the old key dies now).
func parseGrace(raw json.RawMessage) (time.Duration, error) {
	s, given, err := durationString("grace_period", raw)
	if err != nil || !given {
		return 0, err
	}
	d, err := store.GracePeriod.Parse(s)
	if err != nil {
		return 0, fieldError("grace_period", err.Error())
	}
	return d, nil
}

// resetKey is POST /v1/account/reset-key.
func (s *server) resetKey(c *gin.Context) {
	s.answerReset(c, ownerActor(c), owner(c).AccountID)
}

// answerReset resets the account's primary key as asked by the body, for
// the owner or the operator alike, and answers with the new key.
func (s *server) answerReset(c *gin.Context, actor store.Actor, accountID string) {
	var req resetKeyRequest
	if err := s.bindJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	grace, err := parseGrace(req.GracePeriod)
	if err != nil {
		writeError(c, err)
		return
	}
	res, err := s.store.ResetPrimaryKey(c.Request.Context(), actor, accountID, grace)
	if err != nil {
		writeError(c, err)
		return
	}
	setKeyHint(c, res.Key.Hint)
	c.JSON(http.StatusOK, resetKeyResponse{
		Key: res.Secret, KeyID: res.Key.ID, Hint: res.Key.Hint,
		Previous: previousKeyBody{ID: res.Previous.ID, Hint: res.Previous.Hint, ValidUntil: *res.Previous.ValidUntil},
	})
}
