package store

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestListAccountsSearchAndPages(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	var ids []string
	for _, a := range []NewAccount{
		{Name: "Acme Studio", Email: "owner@studio.example"},
		{Name: "Beta", Email: "it@ACME.example"},
		{Name: "Gamma 100%", Email: "g_x@example.com"},
		{Name: "Delta", Email: "d@example.com"},
	} {
		a.Plan = "free"
		c, err := db.CreateAccount(ctx, SystemActor, a)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.Account.ID)
	}
	names := func(q AccountQuery) string {
		t.Helper()
		list, err := db.ListAccounts(ctx, q)
		if err != nil {
			t.Fatalf("ListAccounts(%+v): %v", q, err)
		}
		var out []string
		for _, a := range list {
			out = append(out, a.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		q    AccountQuery
		want string
	}{
		{AccountQuery{Limit: 10}, "Acme Studio,Beta,Gamma 100%,Delta"},
		{AccountQuery{Limit: 2}, "Acme Studio,Beta"},
		{AccountQuery{After: ids[1], Limit: 10}, "Gamma 100%,Delta"},
		{AccountQuery{Search: "acme", Limit: 10}, "Acme Studio,Beta"}, // name or email, any case
		{AccountQuery{Search: "acme", After: ids[0], Limit: 10}, "Beta"},
		{AccountQuery{Search: "acme", Limit: 1}, "Acme Studio"},
		{AccountQuery{Search: "%", Limit: 10}, "Gamma 100%"}, // no wildcards
		{AccountQuery{Search: "_", Limit: 10}, "Gamma 100%"},
		{AccountQuery{Search: "example.com", Limit: 10}, "Gamma 100%,Delta"},
		{AccountQuery{Search: "nobody", Limit: 10}, ""},
	} {
		if got := names(tt.q); got != tt.want {
			t.Errorf("ListAccounts(%+v) = %q, want %q", tt.q, got, tt.want)
		}
	}
	var inv *InvalidError
	if _, err := db.ListAccounts(ctx, AccountQuery{After: "acc_0000000000000000", Limit: 10}); !errors.As(err, &inv) || inv.Fields["after"] == "" {
		t.Errorf("an unknown after: %v, want an InvalidError on after", err)
	}
}
