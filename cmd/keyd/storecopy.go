package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"

	"keyd/store"
)

// runStore runs the commands on a whole database: store copy.
func runStore(ctx context.Context, e env, args []string) error {
	_, rest, err := subcommand(e, args, "store", "copy")
	if err != nil {
		return err
	}
	return runStoreCopy(ctx, e, rest)
}

// runStoreCopy copies a database into a new one, of either engine (SQLite
// into PostgreSQL to run several replicas), and tells the operator what to
// do with the secret key the copied secrets are sealed with.
func runStoreCopy(ctx context.Context, e env, args []string) error {
	flags := newFlags(e, "store copy", "store copy --from FILE|URL --to URL|FILE [--secret-key KEY]")
	from := flags.String("from", envOr(e, "KEYD_DB", "./keyd.db"), "the database to copy: a SQLite file or a postgres:// URL (env KEYD_DB)")
	to := flags.String("to", "", "the database to fill: a postgres:// URL or a SQLite file; it is migrated first and must hold no account")
	secretKey := flags.String("secret-key", e.getenv("KEYD_SECRET_KEY"),
		"base64 of 32 bytes sealing the source's secrets, checked against the copy; empty reads the file <from>.key of a SQLite source (env KEYD_SECRET_KEY)")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if *to == "" {
		return usagef("keyd store copy needs --to (a postgres:// URL or a SQLite file)")
	}
	if *to == *from {
		return usagef("keyd store copy: --from and --to are the same database")
	}
	if !store.IsPostgresURL(*from) {
		if _, err := os.Stat(*from); errors.Is(err, fs.ErrNotExist) {
			return usagef("no database at %s: check --from (or KEYD_DB)", *from)
		}
	}

	// The key the source's secrets are sealed with: given, or the file
	// beside a SQLite source. Never created here: a new key would seal
	// nothing the source holds.
	var key []byte
	keyFrom := "--secret-key"
	if *secretKey != "" {
		k, err := store.ParseSecretKey(*secretKey)
		if err != nil {
			return usagef("--secret-key: %v", err)
		}
		key = k
	} else if !store.IsPostgresURL(*from) {
		keyFrom = store.KeyFilePath(*from)
		k, err := readKeyFile(keyFrom)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		key = k
	}
	// A SQLite destination reads its key from the file beside it: one that
	// holds another key would not open the copied secrets.
	destKeyFile := ""
	if !store.IsPostgresURL(*to) {
		destKeyFile = store.KeyFilePath(*to)
		switch k, err := readKeyFile(destKeyFile); {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case key != nil && !bytes.Equal(k, key):
			return fmt.Errorf("store copy: %s holds another secret key than the source's: remove it (or copy into another file)", destKeyFile)
		default:
			destKeyFile = "" // already the right key
		}
	}

	rep, err := store.Copy(ctx, *from, *to, store.CopyOptions{SecretKey: key})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "copied %s to %s (schema version %d)\n", store.RedactedDSN(*from), store.RedactedDSN(*to), rep.SchemaVersion)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS\tCOMPARED")
	compared := 0
	for _, t := range rep.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Name, t.Rows, t.Sampled)
		compared += t.Sampled
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "checked: the same rows in every table, %d rows compared column by column\n", compared)

	if rep.Rows("secret_key_check") == 0 {
		// Nothing was ever sealed: any key will do, the same everywhere.
		fmt.Fprintln(e.stdout, "nothing in the source is sealed with a secret key: keyd on the copy seals with the key it is given (on PostgreSQL, KEYD_SECRET_KEY=$(openssl rand -base64 32), the same on every replica)")
		return nil
	}
	if !rep.KeyChecked {
		missing := "no secret key given (--secret-key or KEYD_SECRET_KEY)"
		if !store.IsPostgresURL(*from) {
			missing = "no secret key given and no " + keyFrom
		}
		fmt.Fprintf(e.stdout, "%s: webhook secrets and receipt keys were copied sealed and not checked; "+
			"start keyd on the copy with the key they were sealed with (KEYD_SECRET_KEY)\n", missing)
		return nil
	}
	fmt.Fprintf(e.stdout, "the secret key (%s) opens the %d sealed values copied\n", keyFrom, rep.SealedOpened)
	if destKeyFile != "" {
		if err := store.WriteKeyFile(destKeyFile, key); err != nil {
			return fmt.Errorf("store copy: the copy is done, but writing its secret key failed: %w", err)
		}
		fmt.Fprintf(e.stdout, "wrote the secret key to %s, where keyd reads it for %s\n", destKeyFile, *to)
		return nil
	}
	if store.IsPostgresURL(*to) {
		value := "<the same --secret-key>"
		if keyFrom != "--secret-key" {
			value = "$(cat " + keyFrom + ")"
		}
		fmt.Fprintf(e.stdout, "run keyd on the copy with the same secret key on every replica:\n  KEYD_SECRET_KEY=%s keyd serve --db '%s'\n"+
			"keep the key safe and apart from the database: without it the copied webhook secrets and receipt keys cannot be read\n",
			value, store.RedactedDSN(*to))
	}
	return nil
}

// readKeyFile reads a secret key file as keyd writes it.
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := store.ParseSecretKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}
