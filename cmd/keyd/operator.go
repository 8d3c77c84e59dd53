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
// nothing. Only serve, migrate and seed create a database.
func mustExist(path string) error {
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
	verb, rest, err := subcommand(e, args, "accounts", "create", "list")
	if err != nil {
		return err
	}
	switch verb {
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
		fs := newFlags(e, "accounts list", "accounts list [--limit N]")
		path := dbFlag(e, fs)
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
		accounts, err := db.ListAccounts(ctx, *after, *limit)
		if err != nil {
			return err
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
	_, rest, err := subcommand(e, args, "keys", "list")
	if err != nil {
		return err
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
			k.CreatedAt.Format(timeLayout), formatTime(k.LastUsedAt, "Never"), formatTime(k.ExpiresAt, "-"), k.StatusAt(now))
	}
	return tw.Flush()
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
	subs, err := db.ListSubaccounts(ctx, account)
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
	usage := "plans list | plans set NAME [--alias-limit N|per-account] [--rate-limit N|unlimited]"
	fs := newFlags(e, "plans "+verb, usage)
	path := dbFlag(e, fs)
	var aliasLimit, rateLimit *string
	var name string
	if verb == "set" {
		// The plan's name comes first; without it the flags still parse, so
		// that --help shows them.
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			name, rest = rest[0], rest[1:]
		}
		aliasLimit = fs.String("alias-limit", "", "aliases allowed, or per-account (required)")
		rateLimit = fs.String("rate-limit", "", "requests per minute shared by the account's keys, or unlimited (required)")
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if verb == "set" && name == "" {
		return usagef("plans set needs the plan's name first: keyd %s", usage)
	}
	db, err := openForCommand(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "set" {
		plan := store.Plan{Name: name}
		if plan.AliasLimit, err = optionalNumber("--alias-limit", *aliasLimit, "per-account"); err != nil {
			return err
		}
		if plan.RateLimitPerMinute, err = optionalNumber("--rate-limit", *rateLimit, "unlimited"); err != nil {
			return err
		}
		if _, err := db.PutPlan(ctx, cliActor, plan); err != nil {
			return describeStoreError(err)
		}
	}
	plans, err := db.ListPlans(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAN\tALIAS LIMIT\tRATE LIMIT / MIN")
	for _, p := range plans {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, numberOr(p.AliasLimit, "per-account"), numberOr(p.RateLimitPerMinute, "unlimited"))
	}
	return tw.Flush()
}

func optionalNumber(flagName, v, none string) (*int, error) {
	if v == "" {
		return nil, usagef("plans set needs %s (a number or %q)", flagName, none)
	}
	if v == none {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, usagef("%s must be a number or %q", flagName, none)
	}
	return &n, nil
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
