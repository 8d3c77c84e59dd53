package pluginapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

// planBody is a plan as shown inside an account.
type planBody struct {
	Name               string `json:"name"`
	AliasLimit         *int   `json:"alias_limit"`
	RateLimitPerMinute *int   `json:"rate_limit_per_minute"`
}

// accountBody is an account as its owner sees it.
type accountBody struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	Email     string           `json:"email"`
	Status    string           `json:"status"`
	Plan      planBody         `json:"plan"`
	Credits   int64            `json:"credits"`
	Aliases   store.AliasUsage `json:"aliases"`
	ParentID  *string          `json:"parent_id"`
	CreatedAt time.Time        `json:"created_at"`
}

// adminAccountBody adds what only the operator sees.
type adminAccountBody struct {
	accountBody
	AliasLimitOverride *int      `json:"alias_limit_override"`
	UpdatedAt          time.Time `json:"updated_at"`
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
	return accountBody{
		ID: a.ID, Name: a.Name, Email: a.Email, Status: a.Status,
		Plan:    planBody{Name: plan.Name, AliasLimit: plan.AliasLimit, RateLimitPerMinute: plan.RateLimitPerMinute},
		Credits: a.Credits, Aliases: slots, ParentID: a.ParentID, CreatedAt: a.CreatedAt,
	}, nil
}

func (s *server) describeAccountForAdmin(ctx context.Context, a store.Account) (adminAccountBody, error) {
	body, err := s.describeAccount(ctx, a)
	return adminAccountBody{accountBody: body, AliasLimitOverride: a.AliasLimitOverride, UpdatedAt: a.UpdatedAt}, err
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

type resetKeyRequest struct {
	GracePeriod string `json:"grace_period" validate:"max=32"`
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

// resetKey is POST /v1/account/reset-key.
func (s *server) resetKey(c *gin.Context) {
	var req resetKeyRequest
	if err := s.bindJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	var grace time.Duration
	if req.GracePeriod != "" {
		var err error
		if grace, err = parseDuration("grace_period", req.GracePeriod); err != nil {
			writeError(c, err)
			return
		}
	}
	res, err := s.store.ResetPrimaryKey(c.Request.Context(), ownerActor(c), owner(c).AccountID, grace)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Set(ctxKeyHint, res.Key.Hint)
	c.JSON(http.StatusOK, resetKeyResponse{
		Key: res.Secret, KeyID: res.Key.ID, Hint: res.Key.Hint,
		Previous: previousKeyBody{ID: res.Previous.ID, Hint: res.Previous.Hint, ValidUntil: *res.Previous.ValidUntil},
	})
}
