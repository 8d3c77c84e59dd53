package pluginapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"keyd/jobs"
	"keyd/store"
)

type createAccountRequest struct {
	Name    string `json:"name" validate:"required,max=100,text"`
	Email   string `json:"email" validate:"required,accountemail"`
	Plan    string `json:"plan" validate:"required,planname"`
	Credits int64  `json:"credits" validate:"min=0"`
}

type createdAccountResponse struct {
	Account adminAccountBody `json:"account"`
	Key     string           `json:"key"`
}

func operator(c *gin.Context) store.Actor { return store.OperatorActor(c.ClientIP()) }

// adminCreateAccount is POST /admin/v1/accounts.
func (s *server) adminCreateAccount(c *gin.Context) {
	var req createAccountRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	created, err := s.store.CreateAccount(c.Request.Context(), operator(c), store.NewAccount{
		Name: req.Name, Email: req.Email, Plan: req.Plan, Credits: req.Credits})
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := s.describeAccountForAdmin(c.Request.Context(), created.Account)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Set(ctxKeyHint, created.Key.Hint)
	c.JSON(http.StatusCreated, createdAccountResponse{Account: body, Key: created.Secret})
}

// adminGetAccount is GET /admin/v1/accounts/{id}.
func (s *server) adminGetAccount(c *gin.Context) {
	acc, err := s.store.GetAccount(c.Request.Context(), c.Param("id"))
	s.answerAccount(c, acc, err)
}

// answerAccount answers with the operator's view of acc, or with err.
func (s *server) answerAccount(c *gin.Context, acc store.Account, err error) {
	if err == nil {
		var body adminAccountBody
		if body, err = s.describeAccountForAdmin(c.Request.Context(), acc); err == nil {
			c.JSON(http.StatusOK, body)
			return
		}
	}
	writeError(c, err)
}

type updateAccountRequest struct {
	Plan       *string     `json:"plan" validate:"omitnil,planname"`
	Status     *string     `json:"status" validate:"omitnil,oneof=active suspended"`
	AliasLimit nullableInt `json:"alias_limit"`
}

// adminUpdateAccount is PATCH /admin/v1/accounts/{id}.
func (s *server) adminUpdateAccount(c *gin.Context) {
	var req updateAccountRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	acc, err := s.store.UpdateAccount(c.Request.Context(), operator(c), c.Param("id"), store.AccountPatch{
		Plan: req.Plan, Status: req.Status, SetAliasLimit: req.AliasLimit.Set, AliasLimitOverride: req.AliasLimit.Value})
	s.answerAccount(c, acc, err)
}

type addCreditsRequest struct {
	Amount int64  `json:"amount" validate:"required"`
	Reason string `json:"reason" validate:"max=500,text"`
}

// adminAddCredits is POST /admin/v1/accounts/{id}/credits.
func (s *server) adminAddCredits(c *gin.Context) {
	var req addCreditsRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	acc, err := s.store.AddCredits(c.Request.Context(), operator(c), c.Param("id"), req.Amount, req.Reason)
	s.answerAccount(c, acc, err)
}

// adminListPlans is GET /admin/v1/plans.
func (s *server) adminListPlans(c *gin.Context) {
	plans, err := s.store.ListPlans(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"plans": plans})
}

type putPlanRequest struct {
	AliasLimit         *int `json:"alias_limit"`
	RateLimitPerMinute *int `json:"rate_limit_per_minute"`
}

// adminPutPlan is PUT /admin/v1/plans/{name}: creates or replaces a plan.
// A null alias_limit means "set per account"; a null rate limit, unlimited.
func (s *server) adminPutPlan(c *gin.Context) {
	name := c.Param("name")
	var req putPlanRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	plan, err := s.store.PutPlan(c.Request.Context(), operator(c), store.Plan{Name: name, AliasLimit: req.AliasLimit, RateLimitPerMinute: req.RateLimitPerMinute})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, plan)
}

// adminListJobs is GET /admin/v1/jobs.
func (s *server) adminListJobs(c *gin.Context) {
	list := []jobs.Status{}
	if s.jobs != nil {
		list = s.jobs()
	}
	c.JSON(http.StatusOK, gin.H{"jobs": list})
}
