package pluginapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

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
	setKeyHint(c, created.Key.Hint)
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

// adminListAccounts is GET /admin/v1/accounts?search=&after=&limit=: oldest
// first; next_after pages on.
func (s *server) adminListAccounts(c *gin.Context) {
	q := store.AccountQuery{Search: c.Query("search"), After: c.Query("after"), Limit: 50}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(c, fieldError("limit", "must be a number from 1 to 100"))
			return
		}
		q.Limit = n
	}
	if !isCleanText(q.Search) || utf8.RuneCountInString(q.Search) > 100 {
		writeError(c, fieldError("search", "must be at most 100 characters of valid UTF-8 without control characters"))
		return
	}
	ctx := c.Request.Context()
	accounts, err := s.store.ListAccounts(ctx, q)
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]adminAccountBody, 0, len(accounts))
	for _, a := range accounts {
		body, err := s.describeAccountForAdmin(ctx, a)
		if err != nil {
			writeError(c, err)
			return
		}
		out = append(out, body)
	}
	var next *string
	if len(accounts) == q.Limit {
		next = &accounts[len(accounts)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"accounts": out, "next_after": next})
}

// adminResetKey is POST /admin/v1/accounts/{id}/reset-key: the way back in
// for an owner who lost the primary key. It is the owner's reset, done by
// the operator.
func (s *server) adminResetKey(c *gin.Context) {
	s.answerReset(c, operator(c), c.Param("id"))
}

type updateAccountRequest struct {
	Plan       *string     `json:"plan" validate:"omitnil,planname"`
	Status     *string     `json:"status" validate:"omitnil,oneof=active suspended"`
	AliasLimit nullableInt `json:"alias_limit"`
	// SubaccountLimit sets the account's override like AliasLimit.
	SubaccountLimit nullableInt `json:"subaccount_limit"`
}

// adminUpdateAccount is PATCH /admin/v1/accounts/{id}.
func (s *server) adminUpdateAccount(c *gin.Context) {
	var req updateAccountRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	acc, err := s.store.UpdateAccount(c.Request.Context(), operator(c), c.Param("id"), store.AccountPatch{
		Plan: req.Plan, Status: req.Status, SetAliasLimit: req.AliasLimit.Set, AliasLimitOverride: req.AliasLimit.Value,
		SetSubaccountLimit: req.SubaccountLimit.Set, SubaccountLimitOverride: req.SubaccountLimit.Value})
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

// putPlanRequest holds each limit raw: a number, the limit's word for
// "none", or absent (keep the plan's value). null is refused, so that
// "none" is never what a client gets by leaving a field empty.
type putPlanRequest struct {
	AliasLimit         json.RawMessage `json:"alias_limit"`
	SubaccountLimit    json.RawMessage `json:"subaccount_limit"`
	RateLimitPerMinute json.RawMessage `json:"rate_limit_per_minute"`
}

// The words that set a limit to "none" in PUT /admin/v1/plans/{name} and in
// keyd plans set.
const (
	perAccount = "per-account" // alias and subaccount limits: set per account
	unlimited  = "unlimited"   // rate limit
)

// planLimit reads one limit of a plan change: a whole number or none.
func planLimit(field string, raw json.RawMessage, none string) (store.PlanLimit, error) {
	if len(raw) == 0 {
		return store.PlanLimit{}, nil
	}
	var word string
	if json.Unmarshal(raw, &word) == nil && word == none {
		return store.PlanLimit{Set: true}, nil
	}
	var n int
	if string(raw) == "null" || json.Unmarshal(raw, &n) != nil {
		return store.PlanLimit{}, fieldError(field, fmt.Sprintf("must be a whole number or %q", none))
	}
	return store.PlanLimit{Set: true, Value: &n}, nil
}

// adminPutPlan is PUT /admin/v1/plans/{name}. It changes an existing plan:
// a limit left out keeps its value, and an unknown name is 404 so that a
// mistyped name creates nothing. With ?create=true it creates the plan (or
// replaces every limit of an existing one) and needs every limit.
func (s *server) adminPutPlan(c *gin.Context) {
	name := c.Param("name")
	var create bool
	switch c.Query("create") {
	case "", "false":
	case "true":
		create = true
	default:
		writeError(c, fieldError("create", "must be true or false"))
		return
	}
	var req putPlanRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	var ch store.PlanChange
	for _, l := range []struct {
		field, none string
		raw         json.RawMessage
		to          *store.PlanLimit
	}{
		{"alias_limit", perAccount, req.AliasLimit, &ch.AliasLimit},
		{"subaccount_limit", perAccount, req.SubaccountLimit, &ch.SubaccountLimit},
		{"rate_limit_per_minute", unlimited, req.RateLimitPerMinute, &ch.RateLimitPerMinute},
	} {
		var err error
		if *l.to, err = planLimit(l.field, l.raw, l.none); err != nil {
			writeError(c, err)
			return
		}
		if create && !l.to.Set {
			writeError(c, fieldError(l.field, "is required to create a plan"))
			return
		}
	}
	var plan store.Plan
	var err error
	if create {
		plan, err = s.store.PutPlan(c.Request.Context(), operator(c), ch.Plan(name))
	} else {
		plan, err = s.store.UpdatePlan(c.Request.Context(), operator(c), name, ch)
	}
	if errors.Is(err, store.ErrNotFound) {
		err = newError(http.StatusNotFound, codeNotFound, "there is no plan %q; to create it, send ?create=true with every limit", name)
	}
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
