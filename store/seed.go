package store

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// Synthetic data layout: every synthetic account gets a primary key and up
// to seedAliasesPerAccount aliases, on a plan that allows that many.
const (
	seedAliasesPerAccount = 4
	seedPlan              = "pro"
	seedCredits           = 1_000_000
	// seedBatch is how many keys go into one transaction: large enough that
	// commits cost little, small enough that a reader is never starved.
	seedBatch = 20_000
)

// SeedOptions says what Seed makes.
type SeedOptions struct {
	// Keys is how many keys (primaries and aliases together) to create.
	Keys int
	// SampleSize is how many of their plaintexts to write to the sample.
	SampleSize int
	// Force seeds even when the database holds real accounts.
	Force bool
}

// SeedResult reports what Seed made.
type SeedResult struct {
	Accounts, Keys, Sampled int
}

// Seed creates synthetic accounts (marked synthetic = 1) and opts.Keys keys
// for load tests, writing directly into the tables in batched transactions:
// no events, no webhooks, nothing for the audit log. A uniformly drawn
// sample of opts.SampleSize plaintext keys is written to sample, one a line.
// The index is not updated; a keyd started afterwards loads the keys.
func (db *DB) Seed(ctx context.Context, opts SeedOptions, sample io.Writer) (SeedResult, error) {
	var res SeedResult
	if opts.Keys < 0 || opts.SampleSize < 0 || opts.SampleSize > opts.Keys {
		return res, fmt.Errorf("store: seed: need 0 <= sample size (%d) <= keys (%d)", opts.SampleSize, opts.Keys)
	}
	if opts.SampleSize > 0 && sample == nil {
		return res, errors.New("store: seed: no writer for the sample")
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()

	if !opts.Force {
		var real int
		if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE synthetic = 0`).Scan(&real); err != nil {
			return res, fmt.Errorf("store: seed: %w", err)
		}
		if real > 0 {
			return res, fmt.Errorf("%w (%d)", ErrRealAccounts, real)
		}
	}
	endBulkLoad, err := db.eng.BeginBulkLoad(ctx, db.w)
	if err != nil {
		return res, fmt.Errorf("store: seed: %w", err)
	}
	defer endBulkLoad()

	var out *bufio.Writer
	if sample != nil {
		out = bufio.NewWriterSize(sample, 64<<10)
	}
	s := &seeder{eng: db.eng, opts: opts, out: out, now: db.now().Unix()}
	for s.keysMade < opts.Keys {
		n := min(seedBatch, opts.Keys-s.keysMade)
		if err := s.batch(ctx, db.w, n); err != nil {
			return s.result(), err
		}
	}
	if out != nil {
		if err := out.Flush(); err != nil {
			return s.result(), fmt.Errorf("store: seed: write sample: %w", err)
		}
	}
	return s.result(), nil
}

// seeder carries a Seed run across its transactions.
type seeder struct {
	eng  engine
	opts SeedOptions
	out  *bufio.Writer
	now  int64

	accountNo  int    // accounts made so far, committed or not
	accountID  string // the account keys currently go to
	aliasesHad int    // aliases it has so far

	// What the committed transactions hold.
	accounts, keysMade, sampled int
}

func (s *seeder) result() SeedResult {
	return SeedResult{Accounts: s.accounts, Keys: s.keysMade, Sampled: s.sampled}
}

// batch makes n keys (and the accounts they need) in one transaction.
func (s *seeder) batch(ctx context.Context, w *sql.DB, n int) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: seed: begin: %w", err)
	}
	defer tx.Rollback()
	insAccount, err := tx.PrepareContext(ctx, `INSERT INTO accounts
		(id, name, email, plan, status, credits, synthetic, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'active', ?, 1, ?, ?)`)
	if err != nil {
		return fmt.Errorf("store: seed: %w", err)
	}
	defer insAccount.Close()
	insKey, err := tx.PrepareContext(ctx, `INSERT INTO keys
		(id, account_id, type, name, name_fold, hint, hash, status, scopes, allowed_sites, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'active', '["*"]', '[]', ?, ?)`)
	if err != nil {
		return fmt.Errorf("store: seed: %w", err)
	}
	defer insKey.Close()

	// Keys made in this transaction are sampled only once it commits, so a
	// failed batch leaves no line in the sample for a key that does not exist.
	var picked []string
	start := s.keysMade
	for i := 0; i < n; i++ {
		typ, name := KeyTypeAlias, ""
		if s.accountID == "" || s.aliasesHad == seedAliasesPerAccount {
			if err := s.newAccount(ctx, insAccount); err != nil {
				return err
			}
			typ, name = KeyTypePrimary, primaryKeyName
		} else {
			s.aliasesHad++
			name = "Alias " + strconv.Itoa(s.aliasesHad)
		}
		secret, err := s.newKey(ctx, insKey, typ, name)
		if err != nil {
			return err
		}
		// Selection sampling (Knuth's algorithm S): each key is picked with
		// probability (still wanted)/(still to come), which draws exactly
		// SampleSize keys, uniformly, in one pass.
		remaining := s.opts.Keys - (start + i)
		wanted := s.opts.SampleSize - s.sampled - len(picked)
		if wanted > 0 && rand.IntN(remaining) < wanted {
			picked = append(picked, secret)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: seed: commit: %w", err)
	}
	s.keysMade += n
	s.accounts = s.accountNo
	for _, k := range picked {
		s.out.WriteString(k)
		s.out.WriteByte('\n')
	}
	s.sampled += len(picked)
	return nil
}

func (s *seeder) newAccount(ctx context.Context, ins *sql.Stmt) error {
	s.accountNo++
	name := "Synthetic account " + strconv.Itoa(s.accountNo)
	email := "synthetic-" + strconv.Itoa(s.accountNo) + "@example.invalid"
	for attempt := 0; ; attempt++ {
		id, _ := newID(prefixAccount)
		_, err := ins.ExecContext(ctx, id, name, email, seedPlan, seedCredits, s.now, s.now)
		if err != nil {
			if s.eng.UniqueViolation(err, "accounts.id") && attempt < 3 {
				continue
			}
			return fmt.Errorf("store: seed: insert account: %w", err)
		}
		s.accountID, s.aliasesHad = id, 0
		return nil
	}
}

func (s *seeder) newKey(ctx context.Context, ins *sql.Stmt, typ, name string) (string, error) {
	fold := FoldName(name)
	for attempt := 0; ; attempt++ {
		secret := NewKey()
		hash := HashKey(secret)
		id, _ := newID(prefixKey)
		_, err := ins.ExecContext(ctx, id, s.accountID, typ, name, fold, KeyHint(secret), hash[:], s.now, s.now)
		if err != nil {
			if (s.eng.UniqueViolation(err, "keys.hash") || s.eng.UniqueViolation(err, "keys.id")) && attempt < 3 {
				continue
			}
			return "", fmt.Errorf("store: seed: insert key: %w", err)
		}
		return secret, nil
	}
}
