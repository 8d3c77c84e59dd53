package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	pluginapi "keyd/plugin-api"
	"keyd/plugin-api/console"
	"keyd/store"
)

// openForCommand opens the database for a one-off operator command. The key
// index is not loaded: a running keyd picks the change up from the event log.
func openForCommand(ctx context.Context, e env, path string) (*store.DB, error) {
	catalogue, err := parseScopes(e.getenv("KEYD_SCOPES"))
	if err != nil {
		return nil, err
	}
	if err := mustExist(path); err != nil {
		return nil, err
	}
	return store.Open(ctx, path, store.WithoutIndex(), store.WithScopes(catalogue))
}

// mustExist refuses a database path that names no file. Opening would create
// an empty database there, so a mistyped --db would seem to work and show
// nothing. Only serve, migrate and seed create a database. A PostgreSQL
// database is made by its server's administrator: a wrong URL fails to
// connect.
func mustExist(path string) error {
	if store.IsPostgresURL(path) {
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return usagef("no database at %s: check --db (or KEYD_DB); keyd migrate --db %s creates a new one", path, path)
	}
	return nil
}

// cliActor is the operator acting through the command line.
var cliActor = store.Actor{Type: store.ActorOperator, IP: "cli"}

const timeLayout = "2006-01-02 15:04:05"

func formatTime(t *time.Time, never string) string {
	if t == nil {
		return never
	}
	return t.UTC().Format(timeLayout)
}

func runAccounts(ctx context.Context, e env, args []string) error {
	verb, rest, err := subcommand(e, args, "accounts", "create", "list", "suspend", "unsuspend", "reset-key", "sign-in-link")
	if err != nil {
		return err
	}
	switch verb {
	case "suspend", "unsuspend":
		return runAccountStatus(ctx, e, verb, rest)
	case "reset-key":
		return runAccountResetKey(ctx, e, rest)
	case "sign-in-link":
		return runAccountSignInLink(ctx, e, rest)
	case "create":
		fs := newFlags(e, "accounts create", "accounts create --name NAME --email EMAIL [--plan PLAN] [--credits N]")
		path := dbFlag(e, fs)
		name := fs.String("name", "", "account name (required)")
		email := fs.String("email", "", "owner's email (required)")
		plan := fs.String("plan", "free", "plan name")
		credits := fs.Int64("credits", 0, "starting credits")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *name == "" || *email == "" {
			return usagef("accounts create needs --name and --email")
		}
		if !pluginapi.ValidEmail(*email) {
			return usagef("--email %q is not an email address (at most 254 characters)", *email)
		}
		db, err := openForCommand(ctx, e, *path)
		if err != nil {
			return err
		}
		defer db.Close()
		created, err := db.CreateAccount(ctx, cliActor, store.NewAccount{Name: *name, Email: *email, Plan: *plan, Credits: *credits})
		if err != nil {
			return describeStoreError(err)
		}
		fmt.Fprintf(e.stdout, "account %s created (plan %s, %d credits)\n", created.Account.ID, created.Account.Plan, created.Account.Credits)
		fmt.Fprintf(e.stdout, "primary key (shown only now, store it safely): %s\n", created.Secret)
		return nil
	default: // list
		fs := newFlags(e, "accounts list", "accounts list [--search TEXT] [--limit N] [--after ID]")
		path := dbFlag(e, fs)
		search := fs.String("search", "", "only accounts whose name or email contains this (any case)")
		limit := fs.Int("limit", 100, "how many accounts to show")
		after := fs.String("after", "", "show accounts created after this account id")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *limit < 1 {
			return usagef("--limit must be at least 1")
		}
		db, err := openForCommand(ctx, e, *path)
		if err != nil {
			return err
		}
		defer db.Close()
		accounts, err := db.ListAccounts(ctx, store.AccountQuery{Search: *search, After: *after, Limit: *limit})
		if err != nil {
			return describeStoreError(err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tEMAIL\tPLAN\tSTATUS\tCREDITS\tPARENT\tCREATED")
		for _, a := range accounts {
			parent := "-"
			if a.ParentID != nil {
				parent = *a.ParentID
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.ID, a.Name, a.Email, a.Plan, a.Status, a.Credits, parent, a.CreatedAt.Format(timeLayout))
		}
		return tw.Flush()
	}
}

// runAccountStatus suspends or unsuspends an account: a suspended
// account's keys answer ACCOUNT_SUSPENDED, and so do its subaccounts'.
func runAccountStatus(ctx context.Context, e env, verb string, args []string) error {
	fs := newFlags(e, "accounts "+verb, "accounts "+verb+" --account ID")
	path := dbFlag(e, fs)
	account := fs.String("account", "", "account id (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return usagef("accounts %s needs --account", verb)
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	status := store.AccountActive
	if verb == "suspend" {
		status = store.AccountSuspended
	}
	acc, err := db.UpdateAccount(ctx, cliActor, *account, store.AccountPatch{Status: &status})
	if err != nil {
		return describeStoreError(err)
	}
	fmt.Fprintf(e.stdout, "account %s is %s\n", acc.ID, acc.Status)
	return nil
}

// runAccountResetKey replaces an account's primary key, for an owner who
// lost it: the owner's reset, done by the operator.
func runAccountResetKey(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "accounts reset-key", "accounts reset-key --account ID [--grace 24h]")
	path := dbFlag(e, fs)
	account := fs.String("account", "", "account id (required)")
	graceFlag := fs.String("grace", "0", "how long the old key keeps working, e.g. 24h or 7d, at most 168h (0: it dies now)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return usagef("accounts reset-key needs --account")
	}
	grace, err := parseGrace(*graceFlag)
	if err != nil {
		return err
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := db.ResetPrimaryKey(ctx, cliActor, *account, grace)
	if err != nil {
		return describeStoreError(err)
	}
	when := "now"
	if grace > 0 {
		when = "at " + formatTime(r.Previous.ValidUntil, "")
	}
	fmt.Fprintf(e.stdout, "primary key of account %s reset; the old key ...%s stops working %s\n", *account, r.Previous.Hint, when)
	for _, k := range r.Revoked {
		fmt.Fprintf(e.stdout, "key ...%s, still in the grace of an earlier reset, stopped working now\n", k.Hint)
	}
	fmt.Fprintf(e.stdout, "new primary key (shown only now, store it safely): %s\n", r.Secret)
	return nil
}

// runAccountSignInLink prints a one-time owner console sign-in link, valid
// 15 minutes, for an owner who lost the key: they sign in and reset it.
func runAccountSignInLink(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "accounts sign-in-link", "accounts sign-in-link --account ID [--url http://127.0.0.1:8080]")
	path := dbFlag(e, fs)
	account := fs.String("account", "", "account id (required)")
	base := fs.String("url", "http://127.0.0.1:8080", "the address owners reach keyd at")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return usagef("accounts sign-in-link needs --account")
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	token, expires, err := db.CreateSignInLink(ctx, cliActor, *account)
	if errors.Is(err, store.ErrAccountSuspended) {
		return fmt.Errorf("account %s is suspended; unsuspend it before its owner signs in", *account)
	}
	if err != nil {
		return describeStoreError(err)
	}
	fmt.Fprintf(e.stdout, "one-time sign-in link for account %s, valid until %s (use it once):\n%s%s\n",
		*account, formatTime(&expires, ""), strings.TrimSuffix(*base, "/"), console.SignInLinkPath(token))
	return nil
}

// parseGrace reads --grace in the API's duration grammar (store.GracePeriod):
// 0, or a duration such as 90m, 24h or 7d, up to 168h.
func parseGrace(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := store.GracePeriod.Parse(s)
	if err != nil {
		return 0, usagef("--grace %s", err)
	}
	return d, nil
}

// openAccount parses "--db" and "--account ID" for a read-only listing of
// one account's things (command is "keys list" and the like, the flags
// follow in args), opens the database and checks the account exists.
func openAccount(ctx context.Context, e env, args []string, command, what string) (*store.DB, string, error) {
	fs := newFlags(e, command, command+" --account ID")
	path := dbFlag(e, fs)
	account := fs.String("account", "", what+" (required)")
	if err := parseFlags(fs, args); err != nil {
		return nil, "", err
	}
	if *account == "" {
		return nil, "", usagef("%s needs --account", command)
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return nil, "", err
	}
	if _, err := db.GetAccount(ctx, *account); err != nil {
		db.Close()
		return nil, "", describeStoreError(err)
	}
	return db, *account, nil
}

func runKeys(ctx context.Context, e env, args []string) error {
	verb, rest, err := subcommand(e, args, "keys", "list", "revoke")
	if err != nil {
		return err
	}
	if verb == "revoke" {
		return runKeysRevoke(ctx, e, rest)
	}
	return listKeys(ctx, e, rest, "keys list", false)
}

// listKeys prints an account's keys, or only its aliases.
func listKeys(ctx context.Context, e env, args []string, command string, aliasesOnly bool) error {
	db, account, err := openAccount(ctx, e, args, command, "account id")
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := db.ListKeys(ctx, account)
	if err != nil {
		return err
	}
	now := db.Now()
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tHINT\tCREATED\tLAST USED\tEXPIRES\tSTATUS")
	for _, k := range keys {
		if aliasesOnly && k.Type != store.KeyTypeAlias {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t...%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Type, k.Hint,
			k.CreatedAt.Format(timeLayout), formatTime(k.LastUsedAt, "Never"), formatTime(k.ExpiresAt, "-"), keyStatusText(k, now))
	}
	return tw.Flush()
}

// keyStatusText is a key's status for people: a reset key still in its
// grace period says until when.
func keyStatusText(k store.Key, now time.Time) string {
	if k.InGraceAt(now) {
		return "active, in grace until " + formatTime(k.ValidUntil, "")
	}
	return k.StatusAt(now)
}

// runKeysRevoke ends a reset primary key's grace period now.
func runKeysRevoke(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "keys revoke", "keys revoke --account ID --id KEY_ID")
	path := dbFlag(e, fs)
	account := fs.String("account", "", "account id (required)")
	id := fs.String("id", "", "id of a primary key in its grace period after a reset (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *account == "" || *id == "" {
		return usagef("keys revoke needs --account and --id")
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	k, err := db.RevokeGrace(ctx, cliActor, *account, *id)
	if err != nil {
		return describeStoreError(err)
	}
	fmt.Fprintf(e.stdout, "key %s (...%s) is revoked since %s\n", k.ID, k.Hint, formatTime(k.ValidUntil, "-"))
	return nil
}

func runCredits(ctx context.Context, e env, args []string) error {
	verb, rest, err := subcommand(e, args, "credits", "add", "show")
	if err != nil {
		return err
	}
	fs := newFlags(e, "credits "+verb, "credits add --account ID --amount N [--reason TEXT] | credits show --account ID")
	path := dbFlag(e, fs)
	account := fs.String("account", "", "account id (required)")
	var amount *int64
	var reason *string
	if verb == "add" {
		amount = fs.Int64("amount", 0, "credits to add; negative for a correction (required)")
		reason = fs.String("reason", "", "why, for the audit log")
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if *account == "" {
		return usagef("credits %s needs --account", verb)
	}
	if verb == "add" && *amount == 0 {
		return usagef("credits add needs a non-zero --amount")
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "add" {
		if _, err := db.AddCredits(ctx, cliActor, *account, *amount, *reason); err != nil {
			return describeStoreError(err)
		}
	}
	info, err := db.GetCreditInfo(ctx, *account)
	if err != nil {
		return describeStoreError(err)
	}
	fmt.Fprintf(e.stdout, "account %s has %d credits (%d spent; credits.low below %d)\n",
		*account, info.Credits, info.Spent, info.LowCreditThreshold)
	return nil
}

func runSubaccounts(ctx context.Context, e env, args []string) error {
	_, rest, err := subcommand(e, args, "subaccounts", "list")
	if err != nil {
		return err
	}
	db, account, err := openAccount(ctx, e, rest, "subaccounts list", "parent account id")
	if err != nil {
		return err
	}
	defer db.Close()
	subs, err := db.ListSubaccounts(ctx, account, "", 0)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tEMAIL\tPLAN\tSTATUS\tCREDITS\tSPENT\tCREATED")
	for _, s := range subs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.Name, s.Email, s.Plan, s.Status, s.Credits, s.CreditsSpent, s.CreatedAt.Format(timeLayout))
	}
	return tw.Flush()
}

func runPlans(ctx context.Context, e env, args []string) error {
	verb, rest, err := subcommand(e, args, "plans", "list", "set")
	if err != nil {
		return err
	}
	usage := "plans list | plans set NAME [--create] [--alias-limit N|per-account] [--subaccount-limit N|per-account] [--rate-limit N|unlimited]"
	fs := newFlags(e, "plans "+verb, usage)
	path := dbFlag(e, fs)
	var aliasLimit, subaccountLimit, rateLimit *string
	var create *bool
	var name string
	if verb == "set" {
		// The plan's name comes first; without it the flags still parse, so
		// that --help shows them.
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			name, rest = rest[0], rest[1:]
		}
		create = fs.Bool("create", false, "create the plan (every limit required); without it an unknown name is an error")
		aliasLimit = fs.String("alias-limit", "", "active aliases allowed, or per-account (left out: unchanged)")
		subaccountLimit = fs.String("subaccount-limit", "", "subaccounts allowed, or per-account (left out: unchanged)")
		rateLimit = fs.String("rate-limit", "", "requests per minute shared by the account's keys, or unlimited (left out: unchanged)")
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if verb == "set" && name == "" {
		return usagef("plans set needs the plan's name first: keyd %s", usage)
	}
	var change store.PlanChange
	if verb == "set" {
		for _, l := range []struct {
			flag, value, none string
			to                *store.PlanLimit
		}{
			{"--alias-limit", *aliasLimit, "per-account", &change.AliasLimit},
			{"--subaccount-limit", *subaccountLimit, "per-account", &change.SubaccountLimit},
			{"--rate-limit", *rateLimit, "unlimited", &change.RateLimitPerMinute},
		} {
			if *l.to, err = planLimitFlag(l.flag, l.value, l.none); err != nil {
				return err
			}
		}
		switch {
		case *create && !change.Complete():
			return usagef("plans set --create needs --alias-limit, --subaccount-limit and --rate-limit")
		case !change.AliasLimit.Set && !change.SubaccountLimit.Set && !change.RateLimitPerMinute.Set:
			return usagef("plans set needs at least one of --alias-limit, --subaccount-limit, --rate-limit")
		}
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "set" {
		if *create {
			_, err = db.PutPlan(ctx, cliActor, change.Plan(name))
		} else {
			_, err = db.UpdatePlan(ctx, cliActor, name, change)
		}
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("there is no plan %q; to create it, add --create and every limit", name)
		}
		if err != nil {
			return describeStoreError(err)
		}
	}
	plans, err := db.ListPlans(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAN\tALIAS LIMIT\tSUBACCOUNT LIMIT\tRATE LIMIT / MIN")
	for _, p := range plans {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, numberOr(p.AliasLimit, "per-account"),
			numberOr(p.SubaccountLimit, "per-account"), numberOr(p.RateLimitPerMinute, "unlimited"))
	}
	return tw.Flush()
}

// planLimitFlag reads a limit flag of plans set: empty keeps the plan's
// value, none (per-account, unlimited) is said in words, else a number.
func planLimitFlag(flagName, v, none string) (store.PlanLimit, error) {
	switch v {
	case "":
		return store.PlanLimit{}, nil
	case none:
		return store.PlanLimit{Set: true}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return store.PlanLimit{}, usagef("%s must be a number or %q", flagName, none)
	}
	return store.PlanLimit{Set: true, Value: &n}, nil
}

func numberOr(v *int, none string) string {
	if v == nil {
		return none
	}
	return strconv.Itoa(*v)
}

// describeStoreError words store errors for the command line.
func describeStoreError(err error) error {
	var invalid *store.InvalidError
	switch {
	case errors.As(err, &invalid):
		return invalidValue(invalid)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no such account or key")
	case errors.Is(err, store.ErrInsufficientCredits):
		return fmt.Errorf("the account does not have that many credits")
	case errors.Is(err, store.ErrAliasLimit):
		return fmt.Errorf("the account's alias limit is reached")
	case errors.Is(err, store.ErrSubaccountLimit):
		return fmt.Errorf("the account's subaccount limit is reached")
	case errors.Is(err, store.ErrNameTaken):
		return fmt.Errorf("the account already has an alias with that name")
	case errors.Is(err, store.ErrScopeExceeds):
		return fmt.Errorf("the scopes exceed the primary key's scopes")
	case errors.Is(err, store.ErrAliasGone):
		return fmt.Errorf("the alias was deleted")
	}
	return err
}

// flagNames are the command line's names for the store's fields where they
// are not the field name with dashes.
var flagNames = map[string]string{"rate_limit_per_minute": "rate-limit"}

// invalidValue is a value the store refused, named by its flag: a bad value
// on the command line, so exit status 2 like any other.
func invalidValue(invalid *store.InvalidError) error {
	msg := invalid.Message
	for field := range invalid.Fields {
		if rest, ok := strings.CutPrefix(msg, field+": "); ok {
			flag, renamed := flagNames[field]
			if !renamed {
				flag = strings.ReplaceAll(field, "_", "-")
			}
			msg = "--" + flag + ": " + rest
		}
	}
	return usageError{msg}
}
