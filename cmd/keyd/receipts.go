package main

import (
	"context"
	"fmt"
	"time"

	pluginapi "keyd/plugin-api"
	"keyd/store"
)

// receiptTTLFlag is the help of --receipt-ttl, shared by serve and receipts.
const receiptTTLFlag = "how long a signed validation receipt is valid, 1h to 30d (env KEYD_RECEIPT_TTL)"

// parseReceiptTTL reads --receipt-ttl in keyd's duration grammar.
func parseReceiptTTL(s string) (time.Duration, error) {
	d, err := store.ReceiptLifetime.Parse(s)
	if err != nil {
		return 0, usagef("--receipt-ttl %s", err)
	}
	return d, nil
}

// runReceipts prints the public keys that verify receipts, or rotates the
// signing key.
func runReceipts(ctx context.Context, e env, args []string) error {
	verb, rest, err := subcommand(e, args, "receipts", "public-key", "rotate")
	if err != nil {
		return err
	}
	usage := "receipts public-key [--receipt-ttl 72h] | receipts rotate"
	fs := newFlags(e, "receipts "+verb, usage)
	path := dbFlag(e, fs)
	var sealing webhookConfig
	fs.StringVar(&sealing.secretKey, "secret-key", e.getenv("KEYD_SECRET_KEY"),
		"base64 of 32 bytes sealing the signing keys in the database; empty uses (and creates) the file <db>.key (env KEYD_SECRET_KEY)")
	ttl := envOr(e, "KEYD_RECEIPT_TTL", "72h")
	if verb == "public-key" {
		fs.StringVar(&ttl, "receipt-ttl", ttl, receiptTTLFlag+"; the keys of receipts still valid are printed")
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	lifetime, err := parseReceiptTTL(ttl)
	if err != nil {
		return err
	}
	opts, err := sealing.storeOptions()
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, *path, append(opts, store.WithoutIndex())...)
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "rotate" {
		k, err := db.RotateReceiptKey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "receipts are now signed with %s (a running keyd takes it up within a minute); earlier keys stay published until their receipts expire\n", k.KID)
		return nil
	}
	// The signing key is made here when there is none yet, so that what is
	// printed is what keyd serve will sign with.
	if _, err := db.SigningReceiptKey(ctx); err != nil {
		return err
	}
	keys, err := db.ReceiptPublicKeys(ctx, db.Now(), lifetime+time.Minute)
	if err != nil {
		return err
	}
	set, err := pluginapi.ReceiptKeySet(keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n", set)
	return nil
}
