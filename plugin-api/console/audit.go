package console

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"keyd/store"
)

type auditPage struct {
	Entries []store.AuditEntry
	Key     string // the key filter, "" for all
	Keys    []store.Key
	Before  string
	Next    string
}

// auditPage is the account's audit log, newest first, 50 a page, narrowed
// to one key on request.
func (c *console) auditPage(g *gin.Context) {
	ctx := g.Request.Context()
	accountID := sessionOf(g).AccountID
	p := auditPage{Key: strings.TrimSpace(g.Query("key")), Before: g.Query("before")}
	var err error
	if p.Keys, err = c.store.ListPrimaryKeys(ctx, accountID); err != nil {
		c.fail(g, err)
		return
	}
	if p.Entries, err = c.store.ListAuditOfKey(ctx, accountID, p.Key, p.Before, pageSize); err != nil {
		c.fail(g, err)
		return
	}
	if len(p.Entries) == pageSize {
		p.Next = p.Entries[len(p.Entries)-1].ID
	}
	c.render(g, http.StatusOK, "audit", view{Title: "Audit log", Nav: "audit", Data: p})
}

// actorText says who did something, in words.
func actorText(a store.AuditActor) string {
	var who string
	switch a.Type {
	case store.ActorPrimary:
		who = "Primary key"
	case store.ActorAlias:
		who = "Alias"
	case store.ActorOperator:
		who = "Operator"
	default:
		who = "keyd"
	}
	if a.Channel != nil && *a.Channel == store.ChannelConsole {
		who += " in the console"
	}
	return who
}
