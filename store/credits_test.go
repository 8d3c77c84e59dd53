package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestCreditsAreConserved drives random sequences of allocations, reclaims,
// spending and top-ups over a parent and its subaccounts and checks after
// every step that the sum of their pools changed only by top-ups and
// spending, and that no pool is ever negative.
func TestCreditsAreConserved(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			ctx := context.Background()
			db, _, _ := openStoreAt(t)
			rng := rand.New(rand.NewPCG(seed, 42))
			parent := createTestAccount(t, db, "mega") // 100 credits
			ids := []string{parent.Account.ID}
			keys := []string{parent.Secret}
			for i := 0; i < 3; i++ {
				sub, err := db.CreateSubaccount(ctx, SystemActor, parent.Account.ID, NewAccount{Name: "sub", Email: "s@x.test", Credits: int64(rng.IntN(30))})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, sub.Account.ID)
				keys = append(keys, sub.Secret)
			}
			expected := int64(100) // total: what was created, plus top-ups, minus spending
			total := func() int64 {
				var sum int64
				for _, id := range ids {
					a, err := db.GetAccount(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if a.Credits < 0 {
						t.Fatalf("account %s went negative: %d", id, a.Credits)
					}
					sum += a.Credits
				}
				return sum
			}
			for step := 0; step < 200; step++ {
				n := rng.IntN(len(ids))
				amount := int64(rng.IntN(60)) + 1
				var err error
				switch op := rng.IntN(4); op {
				case 0: // allocate to a subaccount
					if n > 0 {
						_, err = db.AllocateCredits(ctx, SystemActor, ids[0], ids[n], amount)
					}
				case 1: // reclaim from a subaccount
					if n > 0 {
						_, err = db.AllocateCredits(ctx, SystemActor, ids[0], ids[n], -amount)
					}
				case 2: // spend with any account's key
					v, _ := db.LookupKey(HashKey(keys[n]))
					if _, err = db.Spend(ctx, &v, amount, ""); err == nil {
						expected -= amount
					}
				case 3: // operator top-up of any account
					if _, err = db.AddCredits(ctx, SystemActor, ids[n], amount, "test"); err == nil {
						expected += amount
					}
				}
				if err != nil && !errors.Is(err, ErrInsufficientCredits) {
					t.Fatalf("step %d: %v", step, err)
				}
				if got := total(); got != expected {
					t.Fatalf("step %d: pools sum to %d, want %d", step, got, expected)
				}
			}
			// The index agrees with the database for every pool.
			for i, id := range ids {
				v, _ := db.LookupKey(HashKey(keys[i]))
				a, _ := db.GetAccount(ctx, id)
				if v.Credits != a.Credits {
					t.Fatalf("index shows %d credits for %s, database %d", v.Credits, id, a.Credits)
				}
			}
		})
	}
}

func TestSpendBatchesKeepIdempotencyWithinABatch(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openStoreAt(t)
	acc := createTestAccount(t, db, "pro")
	v, _ := db.LookupKey(HashKey(acc.Secret))
	var wg sync.WaitGroup
	results := make([]Charge, 50)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := db.Spend(ctx, &v, 7, "same-key")
			if err != nil {
				t.Error(err)
			}
			results[i] = c
		}(i)
	}
	wg.Wait()
	a, _ := db.GetAccount(ctx, acc.Account.ID)
	if a.Credits != 93 {
		t.Fatalf("50 charges with one idempotency key left %d credits, want 93", a.Credits)
	}
	replayed := 0
	for _, c := range results {
		if c.Credits != 93 || c.Charged != 7 {
			t.Fatalf("answer %+v, want the first answer (93 left, 7 charged)", c)
		}
		if c.Replayed {
			replayed++
		}
	}
	if replayed != 49 {
		t.Fatalf("%d replays, want 49", replayed)
	}
}

// BenchmarkSpendParallel measures durable debits per second through the
// group-commit path (each answer after its batch has committed).
func BenchmarkSpendParallel(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	acc, err := db.CreateAccount(ctx, SystemActor, NewAccount{Name: "bench", Email: "b@x.test", Plan: "enterprise", Credits: MaxCredits})
	if err != nil {
		b.Fatal(err)
	}
	v, _ := db.LookupKey(HashKey(acc.Secret))
	b.SetParallelism(32) // many clients at once, as under HTTP load
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Spend(ctx, &v, 1, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "debits/s")
}
