package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"keyd/store"
)

func runAliases(ctx context.Context, e env, args []string) error {
	verb, rest, err := subcommand(e, args, "aliases", "list", "create", "deactivate", "reactivate", "delete")
	if err != nil {
		return err
	}
	if verb == "list" {
		return listKeys(ctx, e, rest, "aliases list", true)
	}
	usage := "aliases " + verb + " --account ID --id KEY_ID"
	if verb == "create" {
		usage = "aliases create --account ID --name NAME [--ttl 7d | --expires-at RFC3339] [--scopes a,b] [--sites example.com,*.example.org]" +
			" [--spend-limit N --spend-period day|month|total] [--max-sites N [--release-after 30d]]"
	}
	fs := newFlags(e, "aliases "+verb, usage)
	path := dbFlag(e, fs)
	account := fs.String("account", "", "account id (required)")
	var id, name, ttl, expiresAt, scopes, sites, spendPeriod, releaseAfter *string
	var spendLimit, maxSites *int64
	if verb == "create" {
		name = fs.String("name", "", "alias name (required)")
		ttl = fs.String("ttl", "", "lifetime, a number and a unit (s, m, h, d) from 1m to 3650d, e.g. 90m, 1.5h or 7d (empty: permanent)")
		expiresAt = fs.String("expires-at", "", "expiry as RFC 3339 (empty: permanent)")
		scopes = fs.String("scopes", "*", "comma-separated scope rules")
		sites = fs.String("sites", "", "comma-separated allowed site hosts (empty: any site)")
		spendLimit = fs.Int64("spend-limit", 0, "units the alias may spend of the pool per --spend-period (0: no limit)")
		spendPeriod = fs.String("spend-period", store.PeriodMonth, "period of --spend-limit: day, month (UTC) or total")
		maxSites = fs.Int64("max-sites", 0, "how many sites may use the alias (0: any number)")
		releaseAfter = fs.String("release-after", "", "free the slot of a site not seen this long, e.g. 30d (empty: never)")
	} else {
		id = fs.String("id", "", "alias key id (required)")
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if *account == "" {
		return usagef("aliases %s needs --account", verb)
	}
	if verb != "create" && *id == "" {
		return usagef("aliases %s needs --id", verb)
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()

	switch verb {
	case "create":
		if *name == "" {
			return usagef("aliases create needs --name")
		}
		in := store.NewAlias{Name: *name, Scopes: splitComma(*scopes), AllowedSites: splitComma(*sites)}
		if *spendLimit != 0 {
			in.SpendLimit = &store.SpendLimit{Limit: *spendLimit, Period: *spendPeriod}
		}
		if *maxSites != 0 {
			n := int(*maxSites)
			in.MaxSites = &n
		}
		if *releaseAfter != "" {
			d, err := store.ReleaseAfter.Parse(*releaseAfter)
			if err != nil {
				return usagef("--release-after %s", err)
			}
			in.ReleaseAfter = &d
		}
		switch {
		case *ttl != "" && *expiresAt != "":
			return usagef("give --ttl or --expires-at, not both")
		case *ttl != "":
			t, err := store.ExpiryFromTTL(db.Now(), *ttl)
			if err != nil {
				return flagError("--ttl", err)
			}
			in.ExpiresAt = &t
		case *expiresAt != "":
			t, err := time.Parse(time.RFC3339, *expiresAt)
			if err != nil {
				return usagef("--expires-at must be RFC 3339, e.g. 2026-12-01T00:00:00Z")
			}
			t = t.UTC().Truncate(time.Second)
			if err := store.CheckExpiresAt(db.Now(), t); err != nil {
				return flagError("--expires-at", err)
			}
			in.ExpiresAt = &t
		}
		created, err := db.CreateAlias(ctx, cliActor, *account, in)
		if err != nil {
			var inv *store.InvalidError
			if errors.As(err, &inv) && (inv.Fields["spend_limit"] != "" || inv.Fields["max_sites"] != "") {
				return usagef("--%s", strings.ReplaceAll(inv.Message, "_", "-"))
			}
			return describeStoreError(err)
		}
		fmt.Fprintf(e.stdout, "alias %s %q created (expires %s)\n", created.Key.ID, created.Key.Name, formatTime(created.Key.ExpiresAt, "never"))
		fmt.Fprintf(e.stdout, "alias key (shown only now, store it safely): %s\n", created.Secret)
		return nil
	case "delete":
		if err := db.DeleteAlias(ctx, cliActor, *account, *id); err != nil {
			return describeStoreError(err)
		}
		fmt.Fprintf(e.stdout, "alias %s deleted\n", *id)
		return nil
	default:
		k, err := db.SetAliasStatus(ctx, cliActor, *account, *id, verb == "reactivate")
		if err != nil {
			return describeStoreError(err)
		}
		fmt.Fprintf(e.stdout, "alias %s is %s\n", k.ID, k.StatusAt(db.Now()))
		return nil
	}
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// flagError words a store.InvalidError about a value as a usage error
// naming the flag the value came from.
func flagError(flagName string, err error) error {
	var inv *store.InvalidError
	if errors.As(err, &inv) {
		for _, msg := range inv.Fields {
			return usagef("%s %s", flagName, msg)
		}
	}
	return err
}
