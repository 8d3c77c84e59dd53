package pluginapi

import (
	"context"
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
	// SuspendedBy is "parent" or "operator" while suspended: the parent
	// may lift only its own suspension.
	SuspendedBy *string `json:"suspended_by"`
}

func subaccountOf(sub store.Subaccount, plan store.Plan) subaccountBody {
	a := sub.Account
	return subaccountBody{ID: a.ID, Name: a.Name, Email: a.Email, Status: a.Status, Plan: planOf(plan),
		Credits: a.Credits, CreditsSpent: sub.CreditsSpent, CreatedAt: a.CreatedAt, SuspendedBy: sub.SuspendedBy}
}

// describeSubaccount is one subaccount as its parent sees it, with its plan.
func (s *server) describeSubaccount(ctx context.Context, sub store.Subaccount) (subaccountBody, error) {
	plan, err := s.store.GetPlan(ctx, sub.Plan)
	if err != nil {
		return subaccountBody{}, err
	}
	return subaccountOf(sub, plan), nil
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

// listSubaccounts is GET /v1/subaccounts?limit=&before=: newest first, with
// credits and status; next_before pages on, as in the audit log.
func (s *server) listSubaccounts(c *gin.Context) {
	limit, err := queryLimit(c, 50, 500)
	if err != nil {
		writeError(c, err)
		return
	}
	subs, err := s.store.ListSubaccounts(c.Request.Context(), owner(c).AccountID, c.Query("before"), limit)
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
		out = append(out, subaccountOf(sub, byName[sub.Plan]))
	}
	var next *string
	if len(subs) == limit {
		next = &subs[len(subs)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"subaccounts": out, "next_before": next})
}

// suspendSubaccount is POST /v1/subaccounts/{id}/suspend and /unsuspend.
func (s *server) suspendSubaccount(suspend bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.noBody(c); err != nil {
			writeError(c, err)
			return
		}
		sub, err := s.store.SuspendSubaccount(c.Request.Context(), ownerActor(c), owner(c).AccountID, c.Param("id"), suspend)
		if err != nil {
			writeError(c, err)
			return
		}
		body, err := s.describeSubaccount(c.Request.Context(), sub)
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, body)
	}
}

// listSubaccountKeys is GET /v1/subaccounts/{id}/keys: the subaccount's keys
// as GET /v1/keys shows them, hints only.
func (s *server) listSubaccountKeys(c *gin.Context) {
	keys, err := s.store.ListSubaccountKeys(c.Request.Context(), owner(c).AccountID, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]keyBody, 0, len(keys))
	for _, k := range keys {
		out = append(out, s.keyBody(k))
	}
	c.JSON(http.StatusOK, gin.H{"keys": out})
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
	after, err := s.store.GetSubaccount(ctx, parent, sub.ID)
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := s.describeSubaccount(ctx, after)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"subaccount": body, "credits": mine.Credits})
}
