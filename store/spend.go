package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Spending credits is the one frequent write. Requests queue up and a single
// goroutine commits them in batches (group commit): while one batch is being
// made durable the next one gathers, so throughput grows with concurrency
// while every answer still comes after its own commit. The credits are what
// must be durable; the per-key daily unit counts for GET /v1/usage are
// statistics, collected in memory with the validation counters and written
// by the activity flush.

// MaxSpendUnits bounds one charge.
const MaxSpendUnits = 1_000_000

// MaxIdempotencyKeyLength bounds an idempotency key.
const MaxIdempotencyKeyLength = 128

// IdempotencyWindow is how long a charge's answer is kept for replays.
const IdempotencyWindow = 24 * time.Hour

// maxSpendBatch bounds one group commit.
const maxSpendBatch = 512

// Charge is the answer to a spend.
type Charge struct {
	Credits  int64 // the pool after the charge
	Charged  int64
	Replayed bool // the answer of an earlier request with the same idempotency key
	// Allowance is the key's spend limit after the charge; nil without one.
	Allowance *Allowance
}

type spendRequest struct {
	accountID, keyID string
	keyPos           uint32 // in the index, for counting units per key
	units            int64
	idemKey          string
	limit            SpendLimit // the key's, read when the batch commits; Limit 0 = none
	done             chan spendResult
}

type spendResult struct {
	charge Charge
	err    error
}

type spender struct {
	mu     sync.RWMutex // held for reading while enqueueing, for writing to close
	closed bool
	queue  chan *spendRequest
	stop   chan struct{}
	done   chan struct{}
}

func newSpender() *spender {
	return &spender{queue: make(chan *spendRequest, 4096), stop: make(chan struct{}), done: make(chan struct{})}
}

// Spend charges units to the pool of v's account on behalf of key v. With an
// idempotency key, a repeat within 24 hours returns the first answer and
// charges nothing. The pool never goes below zero: ErrInsufficientCredits.
// A key with a spend limit never spends past it: a *KeySpendLimitError
// (ErrKeySpendLimit), and nothing is charged.
func (db *DB) Spend(ctx context.Context, v *KeyView, units int64, idemKey string) (Charge, error) {
	if units < 1 || units > MaxSpendUnits {
		return Charge{}, invalidField("units", fmt.Sprintf("must be a whole number from 1 to %d", MaxSpendUnits))
	}
	if len(idemKey) > MaxIdempotencyKeyLength {
		return Charge{}, invalidField("idempotency_key", fmt.Sprintf("at most %d characters", MaxIdempotencyKeyLength))
	}
	req := &spendRequest{accountID: v.AccountID, keyID: v.KeyID, keyPos: v.pos, units: units, idemKey: idemKey, done: make(chan spendResult, 1)}
	s := db.spender
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return Charge{}, ErrClosed
	}
	select {
	case s.queue <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return Charge{}, ctx.Err()
	}
	// Once queued, the answer is awaited even if the client goes away: the
	// charge may be committed already and must be reported truthfully.
	res := <-req.done
	return res.charge, res.err
}

// runSpender commits queued charges in batches until stopped, then commits
// what is still queued and returns.
func (db *DB) runSpender() {
	s := db.spender
	defer close(s.done)
	for {
		var first *spendRequest
		select {
		case first = <-s.queue:
		case <-s.stop:
			for len(s.queue) > 0 {
				db.commitSpends(s.gather(<-s.queue))
			}
			return
		}
		db.commitSpends(s.gather(first))
	}
}

// gather takes what else is queued, up to a batch. It first yields once:
// the first charge wakes the spender at once, and without the yield it would
// often commit that charge nearly alone while the handlers that are ready to
// run wait. Each commit costs a sync, so on a busy core a batch of 5 instead
// of 30 halves throughput (measured with 64 clients on one core).
func (s *spender) gather(first *spendRequest) []*spendRequest {
	runtime.Gosched()
	batch := []*spendRequest{first}
	for len(batch) < maxSpendBatch {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// stopSpender refuses new charges, lets the queued ones commit, and waits.
func (db *DB) stopSpender() {
	s := db.spender
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
}

// commitSpends runs one batch in one transaction and answers each request.
func (db *DB) commitSpends(batch []*spendRequest) {
	results := make([]spendResult, len(batch))
	// Without waiting for replicas: a charge's only event (a spend limit
	// reached) takes no access away that the database does not enforce, and
	// the spender must not stall behind a replica that went away.
	_, err := db.writeTx(context.Background(), func(t *Tx) error {
		clear(results) // a retried transaction starts from nothing
		// The index holds the committed limits: no write can change
		// them before this transaction ends.
		for _, r := range batch {
			limit, period := db.index.SpendLimit(r.keyPos)
			r.limit = SpendLimit{Limit: limit, Period: period}
		}
		return t.spendBatch(context.Background(), batch, results)
	})
	err = db.storageError(err)
	for i, r := range batch {
		if err != nil {
			r.done <- spendResult{err: err}
			continue
		}
		if res := results[i]; res.err == nil {
			// A charge, replayed or not, is a use of the key.
			now := db.now()
			db.recordUse(r.keyPos, now)
			if !res.charge.Replayed {
				db.activity.addUnits(r.keyPos, r.units, now)
			}
		}
		r.done <- results[i]
	}
}

func (t *Tx) spendBatch(ctx context.Context, batch []*spendRequest, results []spendResult) error {
	seen := map[[2]string]int{} // idempotency keys answered in this batch
	for i, r := range batch {
		if r.idemKey != "" {
			if j, ok := seen[[2]string{r.accountID, r.idemKey}]; ok {
				results[i] = replay(results[j], batch[j].units, r.units)
				continue
			}
			prior, found, err := t.priorCharge(ctx, r.accountID, r.idemKey)
			if err != nil {
				return err
			}
			if found {
				results[i] = replay(spendResult{charge: prior}, prior.Charged, r.units)
				continue
			}
		}
		var p pool
		chargePool := func() (charged bool, err error) {
			p, charged, err = t.spendCredits(ctx, r.accountID, r.units)
			return charged, err
		}
		var allowance *Allowance
		if r.limit.Limit > 0 {
			a, err := t.spendWithinLimit(ctx, r, chargePool)
			if errors.Is(err, ErrKeySpendLimit) || errors.Is(err, ErrInsufficientCredits) {
				results[i] = spendResult{err: err}
				continue
			}
			if err != nil {
				return err
			}
			allowance = &a
		} else if charged, err := chargePool(); err != nil {
			return err
		} else if !charged {
			results[i] = spendResult{err: ErrInsufficientCredits}
			continue
		}
		results[i] = spendResult{charge: Charge{Credits: p.credits, Charged: r.units, Allowance: allowance}}
		if r.idemKey != "" {
			seen[[2]string{r.accountID, r.idemKey}] = i
			// A record past its time and not yet pruned is replaced, in
			// the upsert both engines take.
			st, err := t.prepared(ctx, `INSERT INTO usage_idempotency
				(account_id, idem_key, units, credits_after, created_at, spend_limit, spend_period, spent_after)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (account_id, idem_key) DO UPDATE SET units = excluded.units, credits_after = excluded.credits_after,
					created_at = excluded.created_at, spend_limit = excluded.spend_limit, spend_period = excluded.spend_period,
					spent_after = excluded.spent_after`)
			if err != nil {
				return err
			}
			var limit, period, spent any
			if allowance != nil {
				limit, period, spent = allowance.Limit, allowance.Period, allowance.Spent
			}
			if _, err := st.ExecContext(ctx, r.accountID, r.idemKey, r.units, p.credits, t.now.Unix(), limit, period, spent); err != nil {
				return fmt.Errorf("store: record idempotency key: %w", err)
			}
		}
	}
	return nil
}

// replay answers a repeated idempotency key: the first answer, or a mismatch.
func replay(first spendResult, firstUnits, units int64) spendResult {
	if first.err != nil {
		return first
	}
	if firstUnits != units {
		return spendResult{err: ErrIdempotencyMismatch}
	}
	first.charge.Replayed = true
	return first
}

func (t *Tx) priorCharge(ctx context.Context, accountID, idemKey string) (Charge, bool, error) {
	var (
		c            Charge
		created      int64
		limit, spent sql.NullInt64
		period       sql.NullString
	)
	st, err := t.prepared(ctx, `SELECT units, credits_after, created_at, spend_limit, spend_period, spent_after
		FROM usage_idempotency WHERE account_id = ? AND idem_key = ? AND created_at > ?`)
	if err != nil {
		return c, false, err
	}
	err = st.QueryRowContext(ctx, accountID, idemKey, t.now.Add(-IdempotencyWindow).Unix()).
		Scan(&c.Charged, &c.Credits, &created, &limit, &period, &spent)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err == nil && limit.Valid {
		// The allowance as the first answer gave it, in the period it fell in.
		l := SpendLimit{Limit: limit.Int64, Period: period.String}
		a := makeAllowance(l, spent.Int64, periodStart(l.Period, time.Unix(created, 0)))
		c.Allowance = &a
	}
	return c, err == nil, err
}

// PruneIdempotencyKeys deletes answers older than the replay window.
func (db *DB) PruneIdempotencyKeys(ctx context.Context) (int64, error) {
	var n int64
	err := db.write(ctx, func(t *Tx) error {
		res, err := t.tx.ExecContext(ctx, `DELETE FROM usage_idempotency WHERE created_at <= ?`, t.now.Add(-IdempotencyWindow).Unix())
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}
