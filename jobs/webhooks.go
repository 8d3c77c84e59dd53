package jobs

import (
	"context"
	"log/slog"
	"time"
)

// WebhookSweeper is the delivery worker as the sweep job sees it.
type WebhookSweeper interface {
	Sweep(ctx context.Context) error
}

// SweepWebhooks fans new events out into webhook messages and starts the
// deliveries that are due: retries whose time has come, and messages of
// changes made by other processes (which the worker is not woken for).
func SweepWebhooks(w WebhookSweeper) func(context.Context) error {
	return w.Sweep
}

// WebhookPruner is what pruning the attempts log needs from the store.
type WebhookPruner interface {
	Now() time.Time
	PruneWebhooks(ctx context.Context, before time.Time) (attempts, messages int, err error)
}

// PruneWebhooks deletes delivery attempts, and finished messages, older
// than keep, and drops previous signing secrets whose overlap has ended.
func PruneWebhooks(st WebhookPruner, keep time.Duration, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		attempts, messages, err := st.PruneWebhooks(ctx, st.Now().Add(-keep))
		if attempts+messages > 0 {
			log.Info("webhook log pruned", "attempts", attempts, "messages", messages)
		}
		return err
	}
}
