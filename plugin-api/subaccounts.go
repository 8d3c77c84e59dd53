package pluginapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

type createSubaccountRequest struct {
	Name    string `json:"name" validate:"required,max=100,text"`
	Email   string `json:"email" validate:"required,accountemail"`
	Credits int64  `json:"credits" validate:"min=0"`
}

type subaccountBody struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Email        string    `json:"email"`
	Status       string    `json:"status"`
	Plan         planBody  `json:"plan"`
	Credits      int64     `json:"credits"`
	CreditsSpent int64     `json:"credits_spent"`
	CreatedAt    time.Time `json:"created_at"`
}

func subaccountOf(a store.Account, spent int64, plan store.Plan) subaccountBody {
	return subaccountBody{ID: a.ID, Name: a.Name, Email: a.Email, Status: a.Status, Plan: planOf(plan),
		Credits: a.Credits, CreditsSpent: spent, CreatedAt: a.CreatedAt}
}

// createSubaccount is POST /v1/subaccounts.
func (s *server) createSubaccount(c *gin.Context) {
	var req createSubaccountRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	created, err := s.store.CreateSubaccount(ctx, ownerActor(c), owner(c).AccountID,
		store.NewAccount{Name: req.Name, Email: req.Email, Credits: req.Credits})
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := s.describeAccount(ctx, created.Account)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"account": body, "key": created.Secret})
}

// listSubaccounts is GET /v1/subaccounts.
func (s *server) listSubaccounts(c *gin.Context) {
	subs, err := s.store.ListSubaccounts(c.Request.Context(), owner(c).AccountID)
	if err != nil {
		writeError(c, err)
		return
	}
	plans, err := s.store.ListPlans(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	byName := make(map[string]store.Plan, len(plans))
	for _, p := range plans {
		byName[p.Name] = p
	}
	out := make([]subaccountBody, 0, len(subs))
	for _, sub := range subs {
		out = append(out, subaccountOf(sub.Account, sub.CreditsSpent, byName[sub.Plan]))
	}
	c.JSON(http.StatusOK, gin.H{"subaccounts": out})
}

type allocateRequest struct {
	Amount int64 `json:"amount" validate:"required"`
}

// allocateCredits is POST /v1/subaccounts/{id}/credits: a positive amount
// moves credits to the subaccount, a negative one reclaims them.
func (s *server) allocateCredits(c *gin.Context) {
	var req allocateRequest
	if err := s.bindJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	parent := owner(c).AccountID
	sub, err := s.store.AllocateCredits(ctx, ownerActor(c), parent, c.Param("id"), req.Amount)
	if err != nil {
		writeError(c, err)
		return
	}
	mine, err := s.store.GetAccount(ctx, parent)
	if err != nil {
		writeError(c, err)
		return
	}
	pool, err := s.store.GetCreditInfo(ctx, sub.ID)
	if err != nil {
		writeError(c, err)
		return
	}
	plan, err := s.store.GetPlan(ctx, sub.Plan)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"subaccount": subaccountOf(sub, pool.Spent, plan), "credits": mine.Credits})
}
