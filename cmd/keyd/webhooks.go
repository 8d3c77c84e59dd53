package main

import (
	"context"
	"flag"
	"log/slog"
	"strconv"
	"time"

	"keyd/jobs"
	pluginapi "keyd/plugin-api"
	"keyd/store"
	"keyd/webhooks"
)

// webhookRetention is how long delivery attempts and finished messages are kept.
const webhookRetention = 30 * 24 * time.Hour

// webhookConfig is how keyd serve delivers webhooks.
type webhookConfig struct {
	allowPrivate bool
	workers      int
	secretKey    string
}

func addWebhookFlags(e env, fs *flag.FlagSet, cfg *webhookConfig) {
	allow, _ := strconv.ParseBool(e.getenv("KEYD_WEBHOOK_ALLOW_PRIVATE"))
	fs.BoolVar(&cfg.allowPrivate, "webhook-allow-private", allow,
		"allow webhook receivers on loopback and private addresses, for development and tests (env KEYD_WEBHOOK_ALLOW_PRIVATE=1)")
	fs.IntVar(&cfg.workers, "webhook-workers", 8, "webhook deliveries in flight at most (one at a time to any one endpoint)")
	fs.StringVar(&cfg.secretKey, "secret-key", e.getenv("KEYD_SECRET_KEY"),
		"base64 of 32 bytes sealing webhook secrets in the database; empty uses (and creates) the file <db>.key (env KEYD_SECRET_KEY)")
}

// storeOptions are the store options webhook delivery needs.
func (cfg webhookConfig) storeOptions() ([]store.Option, error) {
	if cfg.secretKey == "" {
		return nil, nil
	}
	key, err := store.ParseSecretKey(cfg.secretKey)
	if err != nil {
		return nil, usagef("--secret-key: %v", err)
	}
	return []store.Option{store.WithSecretKey(key)}, nil
}

// webhookDelivery is the running delivery worker and its jobs.
type webhookDelivery struct {
	worker *webhooks.Worker
	jobs   []jobs.Job
	stop   context.CancelFunc
	done   chan struct{}
}

func newWebhookDelivery(db *store.DB, cfg webhookConfig, log *slog.Logger, metrics *pluginapi.Metrics) (*webhookDelivery, error) {
	wcfg := webhooks.WorkerConfig{AllowPrivate: cfg.allowPrivate, Workers: cfg.workers, Logger: log}
	if metrics != nil {
		wcfg.OnAttempt = metrics.WebhookAttempt
	}
	w := webhooks.NewWorker(db, wcfg)
	return &webhookDelivery{
		worker: w,
		jobs: []jobs.Job{
			// Each replica sweeps for the messages it may claim.
			{Name: "webhook-sweep", Schedule: "@every 1s", Run: jobs.SweepWebhooks(w), PerReplica: true},
			{Name: "prune-webhooks", Schedule: "@every 1h", Run: jobs.PruneWebhooks(db, webhookRetention, log)},
		},
	}, nil
}

// start runs the worker until stop.
func (d *webhookDelivery) start() {
	var ctx context.Context
	ctx, d.stop = context.WithCancel(context.Background())
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		d.worker.Run(ctx)
	}()
}

// shutdown stops the worker and waits for deliveries in flight.
func (d *webhookDelivery) shutdown() {
	if d.stop != nil {
		d.stop()
		<-d.done
	}
}
