package jobs

import (
	"context"
	"log/slog"
	"time"
)

// Store is what the jobs need from keyd's store.
type Store interface {
	FlushActivity(ctx context.Context) error
	ExpireAliases(ctx context.Context, lead time.Duration) (expired, expiring int, err error)
	RevokeEndedGrace(ctx context.Context) (int, error)
	PruneIdempotencyKeys(ctx context.Context) (int64, error)
	ReleaseIdleSites(ctx context.Context) (int, error)
}

// FlushActivity writes last-used times, daily counters and sites seen.
func FlushActivity(st Store) func(context.Context) error {
	return st.FlushActivity
}

// ExpireAliases marks aliases past their expiry as expired and warns, once,
// about those expiring within lead.
func ExpireAliases(st Store, lead time.Duration, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		expired, expiring, err := st.ExpireAliases(ctx, lead)
		if expired+expiring > 0 {
			log.Info("aliases expired", "expired", expired, "expiring_soon", expiring)
		}
		return err
	}
}

// RevokeEndedGrace retires reset primary keys whose grace period is over.
func RevokeEndedGrace(st Store, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		n, err := st.RevokeEndedGrace(ctx)
		if n > 0 {
			log.Info("reset keys revoked after grace", "keys", n)
		}
		return err
	}
}

// ReleaseIdleSites frees the site slots of sites not seen for their key's
// release_after.
func ReleaseIdleSites(st Store, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		n, err := st.ReleaseIdleSites(ctx)
		if n > 0 {
			log.Info("idle sites released", "sites", n)
		}
		return err
	}
}

// PruneIdempotencyKeys forgets usage answers older than the replay window.
func PruneIdempotencyKeys(st Store) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := st.PruneIdempotencyKeys(ctx)
		return err
	}
}
