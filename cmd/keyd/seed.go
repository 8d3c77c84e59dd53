package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"keyd/store"
)

// runSeed is `keyd seed`: synthetic accounts and keys for load tests, and a
// file of some of their plaintext keys for the load generator.
func runSeed(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "seed", "seed --keys N [--sample FILE --sample-size M] [--force] [--db FILE]")
	path := dbFlag(e, fs)
	keys := fs.Int("keys", 0, "how many synthetic keys (primaries and aliases) to create (required)")
	samplePath := fs.String("sample", "", "file to write sampled plaintext keys to, one a line (replaced if it exists)")
	sampleSize := fs.Int("sample-size", 10_000, "how many plaintext keys to write to --sample")
	force := fs.Bool("force", false, "seed even a database that holds real (non-synthetic) accounts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keys <= 0 {
		return usagef("seed needs --keys N with N > 0")
	}
	if *samplePath == "" {
		*sampleSize = 0
	}
	if *sampleSize < 0 || *sampleSize > *keys {
		return usagef("--sample-size must be between 0 and --keys (%d)", *keys)
	}

	// Unlike the other operator commands, seed creates its database: it
	// makes load-test databases, most often new ones.
	db, err := store.Open(ctx, *path, store.WithoutIndex())
	if err != nil {
		return err
	}
	defer db.Close()

	var sample *os.File
	if *samplePath != "" {
		// The sample holds working keys: keep it private like the database.
		if sample, err = os.OpenFile(*samplePath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
	}
	started := time.Now()
	res, err := db.Seed(ctx, store.SeedOptions{Keys: *keys, SampleSize: *sampleSize, Force: *force}, writerOrNil(sample))
	if sample != nil {
		if cerr := sample.Close(); err == nil {
			err = cerr
		}
	}
	if errors.Is(err, store.ErrRealAccounts) {
		return fmt.Errorf("%w; seeding is for load-test databases (use --force to seed anyway)", err)
	}
	if err != nil {
		return fmt.Errorf("%w (%d keys in %d accounts were committed before the error)", err, res.Keys, res.Accounts)
	}
	// The keys were written without events, so a snapshot of the index kept
	// next to the database no longer matches it: remove it rather than
	// have the next start find that out.
	if err := os.Remove(*path + ".index"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	took := time.Since(started)
	fmt.Fprintf(e.stdout, "seeded %d keys in %d synthetic accounts into %s in %s (%.0f keys/s)\n",
		res.Keys, res.Accounts, *path, took.Round(time.Millisecond), float64(res.Keys)/took.Seconds())
	if *samplePath != "" {
		fmt.Fprintf(e.stdout, "wrote %d plaintext keys to %s\n", res.Sampled, *samplePath)
	}
	return nil
}

// writerOrNil keeps a nil *os.File from becoming a non-nil io.Writer.
func writerOrNil(f *os.File) interface{ Write([]byte) (int, error) } {
	if f == nil {
		return nil
	}
	return f
}
