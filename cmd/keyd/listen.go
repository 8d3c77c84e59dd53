package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"keyd/store"
	"keyd/webhooks"
)

// runWebhooks is `keyd webhooks listen`: a receiver that checks each
// delivery's Standard Webhooks signature and prints it, for trying webhooks
// out and for debugging a receiver of one's own.
func runWebhooks(ctx context.Context, e env, args []string) error {
	_, rest, err := subcommand(e, args, "webhooks", "listen")
	if err != nil {
		return err
	}
	fs := newFlags(e, "webhooks listen", "webhooks listen --secret whsec_... [--addr 127.0.0.1:9000]")
	addr := fs.String("addr", "127.0.0.1:9000", "address to receive webhooks on")
	secret := fs.String("secret", e.getenv("KEYD_WEBHOOK_SECRET"), "the endpoint's signing secret, whsec_... (env KEYD_WEBHOOK_SECRET)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if err := webhooks.ValidateSecret(*secret); err != nil {
		return usagef("--secret must be the whsec_... secret keyd showed when the webhook was registered")
	}
	if err := checkAddr("--addr", *addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	fmt.Fprintf(e.stdout, "receiving webhooks on http://%s/ (any path); Ctrl-C stops\n", ln.Addr())
	var out sync.Mutex // one delivery printed at a time
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		out.Lock()
		defer out.Unlock()
		id := r.Header.Get(webhooks.HeaderID)
		if err := webhooks.Verify(*secret, r.Header, body, time.Now(), 0); err != nil {
			fmt.Fprintf(e.stdout, "%s REFUSED %s: %v\n", time.Now().UTC().Format(time.RFC3339), id, err)
			status := http.StatusUnauthorized
			if errors.Is(err, webhooks.ErrTimestampOutOfTolerance) {
				status = http.StatusBadRequest
			}
			http.Error(w, "signature not accepted", status)
			return
		}
		var p store.WebhookPayload
		json.Unmarshal(body, &p)
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "  ", "  ") != nil {
			pretty.Write(body)
		}
		fmt.Fprintf(e.stdout, "%s verified %s %s\n  %s\n", time.Now().UTC().Format(time.RFC3339), p.Type, id, pretty.String())
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
