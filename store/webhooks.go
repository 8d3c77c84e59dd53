package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Webhooks: endpoints, the outbox of messages and the attempts log.
//
// Every change already appends an event in its own transaction. The fan-out
// (FanOut) reads the event log after a durable cursor and, in one
// transaction, writes one message per matching endpoint and moves the
// cursor, so an event is never lost between a change and its messages, and a
// fan-out cut short by a crash is simply done again (a message is unique per
// event and endpoint). The worker in package webhooks claims the messages
// due (ClaimDueMessages: a lease, so that several processes share the
// outbox), delivers them and records each attempt here.
//
// Which events go to which endpoint, and the body of each message, are the
// rules of events.go.

// Why an endpoint is disabled.
const (
	DisabledByOwner = "owner"   // PATCH {"enabled": false}
	DisabledGone    = "gone"    // the receiver answered 410 Gone
	DisabledFailing = "failing" // no success for too long
)

// Message statuses.
const (
	MessagePending   = "pending"
	MessageDelivered = "delivered"
	MessageFailed    = "failed"
)

// MaxWebhooksPerAccount bounds how many endpoints one account may register.
const MaxWebhooksPerAccount = 20

const (
	prefixWebhook = "wh_"
	prefixMessage = "msg_"
)

// fanOutBatch is how many events one fan-out transaction reads.
const fanOutBatch = 500

// maxPrune bounds one pruning statement; the next run deletes the rest.
const maxPrune = 10000

// webhookState is the part of DB that webhooks need.
type webhookState struct {
	secretKey []byte // master key given with WithSecretKey, or nil
	sealMu    sync.Mutex
	sealer    *sealer // set up on first use

	changesOnce sync.Once
	changes     chan struct{}
}

func (w *webhookState) changesChan() chan struct{} {
	w.changesOnce.Do(func() { w.changes = make(chan struct{}, 1) })
	return w.changes
}

// Changes signals, without blocking the writer, after a write transaction of
// this DB committed events or webhook messages to send: the delivery worker
// waits on it so that messages go out at once. Signals coalesce; there is
// one channel for the one worker. Changes made by other processes are not
// signalled (the worker polls for those as well).
func (db *DB) Changes() <-chan struct{} { return db.changesChan() }

func (db *DB) notifyChanged() {
	select {
	case db.changesChan() <- struct{}{}:
	default:
	}
}

// Webhook is an endpoint an account owner registered, without its secrets.
type Webhook struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"-"`
	URL         string   `json:"url"`
	Description string   `json:"description"`
	Events      []string `json:"events"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason is DisabledByOwner, DisabledGone or DisabledFailing
	// while the endpoint is disabled.
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
	// FailingSince is the first failed attempt after the last success.
	FailingSince  *time.Time `json:"failing_since"`
	LastSuccessAt *time.Time `json:"last_success_at"`
	// PreviousSecretExpiresAt is set during a secret rotation: until then
	// messages are signed with the previous secret as well.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

// NewWebhook is what registering an endpoint takes. The caller has checked
// the URL and the patterns, and made the secret.
type NewWebhook struct {
	URL         string
	Description string
	Events      []string
	Secret      string
}

// WebhookPatch changes an endpoint; nil fields stay as they are.
type WebhookPatch struct {
	URL         *string
	Description *string
	Events      []string
	Enabled     *bool
}

// WebhookMessage is one message to one endpoint, with its attempts.
type WebhookMessage struct {
	ID            string           `json:"id"`
	WebhookID     string           `json:"webhook_id"`
	EventID       string           `json:"event_id"`
	Type          string           `json:"type"`
	Status        string           `json:"status"`
	Payload       json.RawMessage  `json:"payload"`
	CreatedAt     time.Time        `json:"created_at"`
	NextAttemptAt *time.Time       `json:"next_attempt_at"`
	LastAttemptAt *time.Time       `json:"last_attempt_at"`
	DeliveredAt   *time.Time       `json:"delivered_at"`
	Attempts      []WebhookAttempt `json:"attempts"`
	accountID     string
}

// WebhookAttempt is one attempt to deliver a message, as logged.
type WebhookAttempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"` // 0: no answer
	DurationMS int64     `json:"duration_ms"`
	Response   string    `json:"response"` // first 1 KiB of the answer
	Error      string    `json:"error"`
	Outcome    string    `json:"outcome"`
}

// OutboxMessage is a message due for delivery, with what sending it needs.
// Secrets are the endpoint's live signing secrets; never log them.
type OutboxMessage struct {
	ID         string
	EndpointID string
	URL        string
	EventType  string
	Body       []byte
	Secrets    []string
	// Tries is how many attempts of the current schedule were made.
	Tries int
}

// AttemptRecord is the outcome of one attempt, as the worker records it.
type AttemptRecord struct {
	MessageID string
	// Owner is who claimed the message (ClaimDueMessages) to make the
	// attempt.
	Owner      string
	At         time.Time
	StatusCode int
	Duration   time.Duration
	Response   string
	Error      string
	Outcome    string
	Delivered  bool
	// NextAttemptAt is when to try again; nil for a failure means the
	// schedule is exhausted and the message has failed.
	NextAttemptAt *time.Time
	// Gone disables the endpoint (the receiver answered 410).
	Gone bool
}

// WebhookDisableAfter is how long an endpoint may keep failing, with no
// success in between, before it is disabled.
const WebhookDisableAfter = 5 * 24 * time.Hour

// failingTooLong reports whether an endpoint failing since failingSince
// (its first failed attempt after its last success; zero when it is not
// failing) is to be disabled at now: it has failed for WebhookDisableAfter
// or longer. A 410 Gone answer disables an endpoint at once instead.
func failingTooLong(failingSince, now time.Time) bool {
	return !failingSince.IsZero() && now.Sub(failingSince) >= WebhookDisableAfter
}

func secretWhere(endpointID string) string { return "webhook secret " + endpointID }

const webhookColumns = `id, account_id, url, description, events, enabled, disabled_reason, disabled_at,
	failing_since, last_success_at, old_secret_until, created_at, updated_at`

func scanWebhook(row interface{ Scan(...any) error }, now time.Time) (Webhook, error) {
	var (
		w                                      Webhook
		events                                 string
		reason                                 sql.NullString
		disabledAt, failing, success, oldUntil sql.NullInt64
		created, updated                       int64
	)
	err := row.Scan(&w.ID, &w.AccountID, &w.URL, &w.Description, &events, &w.Enabled, &reason, &disabledAt,
		&failing, &success, &oldUntil, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return w, fmt.Errorf("store: webhook %s events: %w", w.ID, err)
	}
	w.DisabledReason = stringPtr(reason)
	w.DisabledAt, w.FailingSince, w.LastSuccessAt = timePtr(disabledAt), timePtr(failing), timePtr(success)
	if oldUntil.Valid && oldUntil.Int64 > now.Unix() {
		w.PreviousSecretExpiresAt = timePtr(oldUntil)
	}
	w.CreatedAt, w.UpdatedAt = time.Unix(created, 0).UTC(), time.Unix(updated, 0).UTC()
	return w, nil
}

func getWebhook(ctx context.Context, q queryer, accountID, id string, now time.Time) (Webhook, error) {
	return scanWebhook(q.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints
		WHERE id = ? AND account_id = ?`, id, accountID), now)
}

// GetWebhook returns one endpoint of an account; another account's is ErrNotFound.
func (db *DB) GetWebhook(ctx context.Context, accountID, id string) (Webhook, error) {
	return getWebhook(ctx, db.r, accountID, id, db.now())
}

// ListWebhooks returns an account's endpoints, oldest first.
func (db *DB) ListWebhooks(ctx context.Context, accountID string) ([]Webhook, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints
		WHERE account_id = ? ORDER BY created_at, rowid`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	now := db.now()
	out := []Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows, now)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func checkWebhookInput(url string, events []string) error {
	if url == "" {
		return invalidField("url", "is required")
	}
	if len(events) == 0 {
		return invalidField("events", "must list at least one event pattern")
	}
	return nil
}

// CreateWebhook registers an endpoint. Events committed before it do not
// go to it.
func (db *DB) CreateWebhook(ctx context.Context, actor Actor, accountID string, in NewWebhook) (Webhook, error) {
	if err := checkWebhookInput(in.URL, in.Events); err != nil {
		return Webhook{}, err
	}
	if in.Secret == "" {
		return Webhook{}, errors.New("store: webhook without a secret")
	}
	s, err := db.secrets(ctx)
	if err != nil {
		return Webhook{}, err
	}
	id, _ := newID(prefixWebhook)
	events, _ := json.Marshal(in.Events)
	var out Webhook
	err = db.write(ctx, func(t *Tx) error {
		if _, err := getAccount(ctx, t.tx, accountID); err != nil {
			return err
		}
		var n int
		if err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM webhook_endpoints WHERE account_id = ?`, accountID).Scan(&n); err != nil {
			return err
		}
		if n >= MaxWebhooksPerAccount {
			return ErrWebhookLimit
		}
		ev, err := t.event(ctx, accountID, EventWebhookCreated, actor, id, WebhookCreatedData{
			AccountID: accountID, Description: in.Description, Events: in.Events, WebhookID: id,
		})
		if err != nil {
			return err
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO webhook_endpoints
			(id, account_id, url, description, events, enabled, secret, after_seq, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)`,
			id, accountID, in.URL, in.Description, string(events), s.seal([]byte(in.Secret), secretWhere(id)),
			ev.Seq, t.now.Unix(), t.now.Unix()); err != nil {
			return fmt.Errorf("store: insert webhook: %w", err)
		}
		out, err = getWebhook(ctx, t.tx, accountID, id, t.now)
		return err
	})
	return out, err
}

// UpdateWebhook changes an endpoint's URL, description, patterns or whether
// it is enabled. Disabling fails its pending messages (recover them after
// enabling it again); enabling clears its failure record.
func (db *DB) UpdateWebhook(ctx context.Context, actor Actor, accountID, id string, p WebhookPatch) (Webhook, error) {
	if p.URL != nil && *p.URL == "" {
		return Webhook{}, invalidField("url", "must not be empty")
	}
	if p.Events != nil && len(p.Events) == 0 {
		return Webhook{}, invalidField("events", "must list at least one event pattern")
	}
	var out Webhook
	err := db.write(ctx, func(t *Tx) error {
		w, err := getWebhook(ctx, t.tx, accountID, id, t.now)
		if err != nil {
			return err
		}
		changed := []string{}
		if p.URL != nil && *p.URL != w.URL {
			w.URL = *p.URL
			changed = append(changed, "url")
		}
		if p.Description != nil && *p.Description != w.Description {
			w.Description = *p.Description
			changed = append(changed, "description")
		}
		if p.Events != nil {
			w.Events = p.Events
			changed = append(changed, "events")
		}
		if len(changed) > 0 {
			events, _ := json.Marshal(w.Events)
			if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_endpoints SET url = ?, description = ?, events = ?, updated_at = ?
				WHERE id = ?`, w.URL, w.Description, string(events), t.now.Unix(), id); err != nil {
				return fmt.Errorf("store: update webhook: %w", err)
			}
		}
		if p.Enabled != nil && *p.Enabled != w.Enabled {
			changed = append(changed, "enabled")
			if *p.Enabled {
				_, err = t.tx.ExecContext(ctx, `UPDATE webhook_endpoints SET enabled = 1, disabled_reason = NULL,
					disabled_at = NULL, failing_since = NULL, updated_at = ? WHERE id = ?`, t.now.Unix(), id)
			} else {
				err = t.disableWebhook(ctx, id, DisabledByOwner)
			}
			if err != nil {
				return err
			}
		}
		if len(changed) > 0 {
			if _, err := t.event(ctx, accountID, EventWebhookUpdated, actor, id, WebhookUpdatedData{
				AccountID: accountID, Changed: changed, WebhookID: id,
			}); err != nil {
				return err
			}
		}
		out, err = getWebhook(ctx, t.tx, accountID, id, t.now)
		return err
	})
	return out, err
}

// disableWebhook disables an endpoint and fails its pending messages, except
// test messages, which go to disabled endpoints too.
func (t *Tx) disableWebhook(ctx context.Context, id, reason string) error {
	if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, disabled_at = ?,
		updated_at = ? WHERE id = ?`, reason, t.now.Unix(), t.now.Unix(), id); err != nil {
		return fmt.Errorf("store: disable webhook: %w", err)
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_messages SET status = 'failed', next_attempt_at = NULL, updated_at = ?
		WHERE endpoint_id = ? AND status = 'pending' AND event_type <> ?`, t.now.Unix(), id, EventWebhookTest); err != nil {
		return fmt.Errorf("store: fail messages of a disabled webhook: %w", err)
	}
	return nil
}

// DeleteWebhook removes an endpoint with its messages and attempts.
func (db *DB) DeleteWebhook(ctx context.Context, actor Actor, accountID, id string) error {
	return db.write(ctx, func(t *Tx) error {
		if _, err := getWebhook(ctx, t.tx, accountID, id, t.now); err != nil {
			return err
		}
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = ?`, id); err != nil {
			return fmt.Errorf("store: delete webhook: %w", err)
		}
		_, err := t.event(ctx, accountID, EventWebhookDeleted, actor, id, WebhookData{AccountID: accountID, WebhookID: id})
		return err
	})
}

// RotateWebhookSecret makes secret the endpoint's signing secret. The
// previous one keeps signing alongside it for overlap, so receivers can
// switch without missing a message; a secret older than that is dropped.
func (db *DB) RotateWebhookSecret(ctx context.Context, actor Actor, accountID, id, secret string, overlap time.Duration) (Webhook, error) {
	if secret == "" {
		return Webhook{}, errors.New("store: empty webhook secret")
	}
	s, err := db.secrets(ctx)
	if err != nil {
		return Webhook{}, err
	}
	var out Webhook
	err = db.write(ctx, func(t *Tx) error {
		if _, err := getWebhook(ctx, t.tx, accountID, id, t.now); err != nil {
			return err
		}
		until := t.now.Add(overlap)
		// Both values are sealed for this endpoint, so the current one can
		// move to old_secret as it is.
		if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_endpoints SET old_secret = secret, old_secret_until = ?,
			secret = ?, updated_at = ? WHERE id = ?`,
			until.Unix(), s.seal([]byte(secret), secretWhere(id)), t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: rotate webhook secret: %w", err)
		}
		if _, err := t.event(ctx, accountID, EventWebhookSecretRotated, actor, id, WebhookSecretRotatedData{
			AccountID: accountID, PreviousSecretExpiresAt: until.Format(time.RFC3339), WebhookID: id,
		}); err != nil {
			return err
		}
		out, err = getWebhook(ctx, t.tx, accountID, id, t.now)
		return err
	})
	return out, err
}

// SendTestMessage appends a webhook.test event for one endpoint and writes
// its message in the same transaction. It goes to that endpoint only,
// whatever its patterns, even while it is disabled.
func (db *DB) SendTestMessage(ctx context.Context, actor Actor, accountID, id string) (WebhookMessage, error) {
	var out WebhookMessage
	err := db.write(ctx, func(t *Tx) error {
		if _, err := getWebhook(ctx, t.tx, accountID, id, t.now); err != nil {
			return err
		}
		ev, err := t.event(ctx, accountID, EventWebhookTest, actor, id, WebhookData{AccountID: accountID, WebhookID: id})
		if err != nil {
			return err
		}
		body, err := webhookBody(ev)
		if err != nil {
			return err
		}
		msgID, err := t.insertMessage(ctx, id, ev, body)
		if err != nil {
			return err
		}
		out, err = getMessage(ctx, t.tx, accountID, msgID)
		return err
	})
	return out, err
}

// insertMessage writes a message for ev to an endpoint unless it exists; the
// id is empty when it did.
func (t *Tx) insertMessage(ctx context.Context, endpointID string, ev Event, body []byte) (string, error) {
	id, _ := newID(prefixMessage)
	res, err := t.tx.ExecContext(ctx, `INSERT INTO webhook_messages
		(id, endpoint_id, account_id, event_seq, event_type, body, status, tries, next_attempt_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)
		ON CONFLICT (event_seq, endpoint_id) DO NOTHING`,
		id, endpointID, ev.AccountID, ev.Seq, ev.Type, body, t.now.Unix(), t.now.Unix(), t.now.Unix())
	if err != nil {
		return "", fmt.Errorf("store: insert webhook message: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", nil
	}
	return id, nil
}

// FanOut turns the events appended since the last fan-out into messages:
// one per event and enabled endpoint of the event's account whose patterns
// select its type (a webhook.test event: its own endpoint only), for the
// event types sent to endpoints (IsWebhookEventType). It reports how many
// messages it wrote.
func (db *DB) FanOut(ctx context.Context) (int, error) {
	total := 0
	for {
		var cursor, last int64
		if err := db.r.QueryRowContext(ctx, `SELECT (SELECT last_seq FROM webhook_cursor WHERE id = 1),
			(SELECT coalesce(max(seq), 0) FROM events)`).Scan(&cursor, &last); err != nil {
			return total, fmt.Errorf("store: fan-out cursor: %w", err)
		}
		if last <= cursor {
			return total, nil
		}
		var n int
		err := db.write(ctx, func(t *Tx) error {
			var err error
			n, err = t.fanOutBatch(ctx)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
	}
}

type fanEndpoint struct {
	id       string
	patterns []string
	afterSeq int64
	enabled  bool
}

func (t *Tx) fanOutBatch(ctx context.Context) (int, error) {
	// Write transactions take turns (engine.BeginWrite), so this reads
	// where the last fan-out, of any process, left the cursor: an event is
	// fanned out once and the cursor never moves back.
	var cursor int64
	if err := t.tx.QueryRowContext(ctx, `SELECT last_seq FROM webhook_cursor WHERE id = 1`).Scan(&cursor); err != nil {
		return 0, fmt.Errorf("store: fan-out cursor: %w", err)
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT seq, coalesce(account_seq, 0), coalesce(account_id, ''), type,
		coalesce(target_id, ''), data, created_at_ms
		FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, cursor, fanOutBatch)
	if err != nil {
		return 0, err
	}
	var events []Event
	for rows.Next() {
		var (
			e       Event
			data    string
			created int64
		)
		if err := rows.Scan(&e.Seq, &e.Sequence, &e.AccountID, &e.Type, &e.TargetID, &data, &created); err != nil {
			rows.Close()
			return 0, err
		}
		e.ID, e.Data, e.CreatedAt = formatID(prefixEvent, uint64(e.Seq)), json.RawMessage(data), eventTimeFromMillis(created)
		events = append(events, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(events) == 0 {
		return 0, err
	}

	endpoints := map[string][]fanEndpoint{}
	written := 0
	for _, ev := range events {
		if ev.AccountID == "" || !IsWebhookEventType(ev.Type) {
			continue
		}
		eps, ok := endpoints[ev.AccountID]
		if !ok {
			if eps, err = t.fanEndpoints(ctx, ev.AccountID); err != nil {
				return 0, err
			}
			endpoints[ev.AccountID] = eps
		}
		var body []byte
		for _, ep := range eps {
			if ev.Seq <= ep.afterSeq {
				continue
			}
			if ev.Type == EventWebhookTest {
				if ep.id != ev.TargetID {
					continue
				}
			} else if !ep.enabled || !MatchEventPatterns(ep.patterns, ev.Type) {
				continue
			}
			if body == nil {
				if body, err = webhookBody(ev); err != nil {
					return 0, fmt.Errorf("store: message body for event %s: %w", ev.ID, err)
				}
			}
			id, err := t.insertMessage(ctx, ep.id, ev, body)
			if err != nil {
				return 0, err
			}
			if id != "" {
				written++
			}
		}
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_cursor SET last_seq = ? WHERE id = 1`, events[len(events)-1].Seq); err != nil {
		return 0, fmt.Errorf("store: advance fan-out cursor: %w", err)
	}
	return written, nil
}

func (t *Tx) fanEndpoints(ctx context.Context, accountID string) ([]fanEndpoint, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT id, events, after_seq, enabled FROM webhook_endpoints
		WHERE account_id = ? ORDER BY rowid`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fanEndpoint
	for rows.Next() {
		var (
			ep     fanEndpoint
			events string
		)
		if err := rows.Scan(&ep.id, &events, &ep.afterSeq, &ep.enabled); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(events), &ep.patterns); err != nil {
			return nil, fmt.Errorf("store: webhook %s events: %w", ep.id, err)
		}
		out = append(out, ep)
	}
	return out, rows.Err()
}

// ClaimDueMessages leases to owner, until now+leaseFor, the message to send
// next to each endpoint that has one due at now and none leased, and
// returns them: of an endpoint's pending messages due by now, the one of
// the earliest event, so that messages to an endpoint start in the order of
// their events. A message waiting for a retry is not due and holds back
// none behind it. At most limit messages, earliest due first. Messages of a
// disabled endpoint are not due, except test messages.
//
// Several keyd processes on one database each claim what they send, so a
// message is in flight in one of them at a time, and an endpoint has at
// most one message in flight. The lease is given up by the owner's
// RecordAttempt or ReleaseMessages; a worker that dies holding it leaves
// the message to whoever claims after lease_until, with its tries and
// schedule as recorded: delivery is at least once, with the same message
// id. leaseFor must outlast an attempt and its recording.
func (db *DB) ClaimDueMessages(ctx context.Context, owner string, now time.Time, leaseFor time.Duration, limit int) ([]OutboxMessage, error) {
	if owner == "" {
		return nil, errors.New("store: claim without an owner")
	}
	s, err := db.secrets(ctx)
	if err != nil {
		return nil, err
	}
	until := now.Add(leaseFor)
	if until.Unix() <= now.Unix() {
		return nil, fmt.Errorf("store: lease of %v is shorter than a second", leaseFor)
	}
	var claimed []dueMessage
	err = db.write(ctx, func(t *Tx) error {
		claimed = nil
		// Claims take turns with every write transaction
		// (engine.BeginWrite), so the query below sees every lease
		// committed before. The conditional update alone keeps a message
		// from two owners, but two claims side by side with clocks a
		// second apart could each lease a different message of one
		// endpoint (one due for one of them only): two in flight where
		// one is the rule. FOR UPDATE SKIP LOCKED would not prevent that
		// either.
		due, err := dueMessages(ctx, t.tx, now, limit)
		if err != nil {
			return err
		}
		// Each leased only if still pending, due and free: never to two
		// owners, whatever the query saw.
		for _, m := range due {
			res, err := t.tx.ExecContext(ctx, `UPDATE webhook_messages SET lease_owner = ?, lease_until = ?
				WHERE id = ? AND status = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)`,
				owner, until.Unix(), m.ID, now.Unix(), now.Unix())
			if err != nil {
				return fmt.Errorf("store: lease message: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				claimed = append(claimed, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]OutboxMessage, len(claimed))
	secrets := map[string][]string{}
	for i, m := range claimed {
		if m.Secrets = secrets[m.EndpointID]; m.Secrets == nil {
			plain, err := s.open(m.secret, secretWhere(m.EndpointID))
			if err != nil {
				return nil, fmt.Errorf("store: secret of webhook %s: %w", m.EndpointID, err)
			}
			m.Secrets = []string{string(plain)}
			if m.oldSecret != nil {
				plain, err := s.open(m.oldSecret, secretWhere(m.EndpointID))
				if err != nil {
					return nil, fmt.Errorf("store: previous secret of webhook %s: %w", m.EndpointID, err)
				}
				m.Secrets = append(m.Secrets, string(plain))
			}
			secrets[m.EndpointID] = m.Secrets
		}
		out[i] = m.OutboxMessage
	}
	return out, nil
}

// dueMessage is a message ClaimDueMessages found due, its secrets still
// sealed.
type dueMessage struct {
	OutboxMessage
	secret, oldSecret []byte
}

// dueMessages reads what ClaimDueMessages leases: the earliest due message
// of each endpoint with no message leased at now.
func dueMessages(ctx context.Context, q queryer, now time.Time, limit int) ([]dueMessage, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.id, m.endpoint_id, e.url, m.event_type, m.body, m.tries,
			e.secret, e.old_secret, coalesce(e.old_secret_until, 0)
		FROM (SELECT m.rowid AS r, m.endpoint_id, m.next_attempt_at, m.event_seq,
				row_number() OVER (PARTITION BY m.endpoint_id ORDER BY m.event_seq) AS rn
			FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id
			WHERE m.status = 'pending' AND m.next_attempt_at <= ? AND (e.enabled = 1 OR m.event_type = ?)
				AND NOT EXISTS (SELECT 1 FROM webhook_messages l WHERE l.endpoint_id = m.endpoint_id
					AND l.lease_until > ? AND l.status = 'pending')) d
		JOIN webhook_messages m ON m.rowid = d.r
		JOIN webhook_endpoints e ON e.id = d.endpoint_id
		WHERE d.rn = 1 ORDER BY d.next_attempt_at, d.event_seq LIMIT ?`,
		now.Unix(), EventWebhookTest, now.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due messages: %w", err)
	}
	defer rows.Close()
	var out []dueMessage
	for rows.Next() {
		var (
			m        dueMessage
			oldUntil int64
		)
		if err := rows.Scan(&m.ID, &m.EndpointID, &m.URL, &m.EventType, &m.Body, &m.Tries,
			&m.secret, &m.oldSecret, &oldUntil); err != nil {
			return nil, err
		}
		if oldUntil <= now.Unix() {
			m.oldSecret = nil // the rotation's overlap has ended
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ReleaseMessages gives up owner's leases of the messages named by ids,
// which were not attempted, so that they are due again at once to whoever
// claims next.
func (db *DB) ReleaseMessages(ctx context.Context, owner string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{owner}
	for _, id := range ids {
		args = append(args, id)
	}
	return db.write(ctx, func(t *Tx) error {
		if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_messages SET lease_owner = NULL, lease_until = NULL
			WHERE lease_owner = ? AND id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...); err != nil {
			return fmt.Errorf("store: release messages: %w", err)
		}
		return nil
	})
}

// LeaseOwners returns who holds leases of pending messages, live or run out.
func (db *DB) LeaseOwners(ctx context.Context) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT lease_owner FROM webhook_messages
		WHERE lease_until IS NOT NULL AND status = 'pending' ORDER BY lease_owner`)
	if err != nil {
		return nil, fmt.Errorf("store: lease owners: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var owner string
		if err := rows.Scan(&owner); err != nil {
			return nil, err
		}
		out = append(out, owner)
	}
	return out, rows.Err()
}

// ReleaseOwner gives up every lease owner holds, for a worker that knows
// the owner is gone (a process that died), and reports how many.
func (db *DB) ReleaseOwner(ctx context.Context, owner string) (int, error) {
	var n int64
	err := db.write(ctx, func(t *Tx) error {
		res, err := t.tx.ExecContext(ctx, `UPDATE webhook_messages SET lease_owner = NULL, lease_until = NULL
			WHERE lease_owner = ?`, owner)
		if err != nil {
			return fmt.Errorf("store: release leases: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// RecordAttempt logs an attempt and moves its message on: delivered,
// pending until rec.NextAttemptAt, or failed. It keeps the endpoint's
// failure record and disables the endpoint when the receiver answered 410
// or it has failed for WebhookDisableAfter; disabling appends a
// webhook.disabled event, which goes to the account's other endpoints. A
// message deleted meanwhile (with its endpoint) is ignored.
//
// The attempt ends rec.Owner's lease of the message. An attempt whose
// owner lost the lease (it ran past lease_until and another claimed the
// message, which may since have been delivered) is logged, since the
// receiver may have seen it, but changes nothing else: the message and its
// endpoint are the new owner's to move on.
func (db *DB) RecordAttempt(ctx context.Context, rec AttemptRecord) error {
	return db.write(ctx, func(t *Tx) error {
		var (
			endpointID, accountID, eventType, description string
			enabled                                       bool
			failing                                       sql.NullInt64
		)
		err := t.tx.QueryRowContext(ctx, `SELECT m.endpoint_id, m.account_id, m.event_type, e.enabled, e.failing_since, e.description
			FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id WHERE m.id = ?`, rec.MessageID).
			Scan(&endpointID, &accountID, &eventType, &enabled, &failing, &description)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: load message: %w", err)
		}
		at := rec.At.Unix()
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO webhook_attempts
			(message_id, attempted_at, status_code, duration_ms, response, error, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			rec.MessageID, at, rec.StatusCode, rec.Duration.Milliseconds(), rec.Response, rec.Error, rec.Outcome); err != nil {
			return fmt.Errorf("store: insert attempt: %w", err)
		}

		status, next := MessageFailed, any(nil)
		switch {
		case rec.Delivered:
			status = MessageDelivered
		case rec.NextAttemptAt != nil && !rec.Gone && (enabled || eventType == EventWebhookTest):
			status, next = MessagePending, rec.NextAttemptAt.Unix()
		}
		// Conditional, so that it waits for a claim of the message under
		// way elsewhere and then finds the lease gone.
		res, err := t.tx.ExecContext(ctx, `UPDATE webhook_messages SET status = ?, tries = tries + 1, next_attempt_at = ?,
			last_attempt_at = ?, delivered_at = CASE WHEN ? <> 0 THEN ? ELSE delivered_at END, updated_at = ?,
			lease_owner = NULL, lease_until = NULL
			WHERE id = ? AND lease_owner = ?`,
			status, next, at, rec.Delivered, at, t.now.Unix(), rec.MessageID, rec.Owner)
		if err != nil {
			return fmt.Errorf("store: update message: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // the lease was lost: logged only
		}

		if rec.Delivered {
			_, err := t.tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = ? WHERE id = ?`, at, endpointID)
			return err
		}
		failingSince := rec.At
		if failing.Valid {
			failingSince = time.Unix(failing.Int64, 0).UTC()
		} else if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = ? WHERE id = ?`, at, endpointID); err != nil {
			return err
		}
		reason := ""
		switch {
		case !enabled:
		case rec.Gone:
			reason = DisabledGone
		case failingTooLong(failingSince, rec.At):
			reason = DisabledFailing
		}
		if reason == "" {
			return nil
		}
		if err := t.disableWebhook(ctx, endpointID, reason); err != nil {
			return err
		}
		_, err = t.event(ctx, accountID, EventWebhookDisabled, SystemActor, endpointID, WebhookDisabledData{
			AccountID: accountID, Description: description, DisabledAt: t.now.Format(time.RFC3339),
			FailingSince: failingSince.Format(time.RFC3339), Reason: reason, WebhookID: endpointID,
		})
		return err
	})
}

const messageColumns = `m.rowid, m.id, m.endpoint_id, m.account_id, m.event_seq, m.event_type, m.status, m.body,
	m.created_at, m.next_attempt_at, m.last_attempt_at, m.delivered_at`

func scanMessage(row interface{ Scan(...any) error }) (WebhookMessage, int64, error) {
	var (
		m                     WebhookMessage
		rowid, seq, created   int64
		body                  []byte
		next, last, delivered sql.NullInt64
	)
	err := row.Scan(&rowid, &m.ID, &m.WebhookID, &m.accountID, &seq, &m.Type, &m.Status, &body, &created, &next, &last, &delivered)
	if errors.Is(err, sql.ErrNoRows) {
		return m, 0, ErrNotFound
	}
	if err != nil {
		return m, 0, err
	}
	m.EventID = formatID(prefixEvent, uint64(seq))
	m.Payload = json.RawMessage(body)
	m.CreatedAt = time.Unix(created, 0).UTC()
	m.NextAttemptAt, m.LastAttemptAt, m.DeliveredAt = timePtr(next), timePtr(last), timePtr(delivered)
	m.Attempts = []WebhookAttempt{}
	return m, rowid, nil
}

func getMessage(ctx context.Context, q queryer, accountID, id string) (WebhookMessage, error) {
	m, _, err := scanMessage(q.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM webhook_messages m
		WHERE m.id = ? AND m.account_id = ?`, id, accountID))
	if err != nil {
		return m, err
	}
	if err := attachAttempts(ctx, q, []*WebhookMessage{&m}); err != nil {
		return m, err
	}
	return m, nil
}

// GetMessage returns one message of an account with its attempts.
func (db *DB) GetMessage(ctx context.Context, accountID, id string) (WebhookMessage, error) {
	return getMessage(ctx, db.r, accountID, id)
}

func attachAttempts(ctx context.Context, q queryer, msgs []*WebhookMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	byID := make(map[string]*WebhookMessage, len(msgs))
	args := make([]any, 0, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
		args = append(args, m.ID)
	}
	rows, err := q.QueryContext(ctx, `SELECT message_id, attempted_at, status_code, duration_ms, response, error, outcome
		FROM webhook_attempts WHERE message_id IN (?`+strings.Repeat(", ?", len(args)-1)+`) ORDER BY id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			a  WebhookAttempt
			at int64
		)
		if err := rows.Scan(&id, &at, &a.StatusCode, &a.DurationMS, &a.Response, &a.Error, &a.Outcome); err != nil {
			return err
		}
		a.At = time.Unix(at, 0).UTC()
		byID[id].Attempts = append(byID[id].Attempts, a)
	}
	return rows.Err()
}

// ListMessages returns an endpoint's messages with their attempts, newest
// first, before the message with id before (empty for the newest), at most
// limit, only those with the given status unless it is empty.
func (db *DB) ListMessages(ctx context.Context, accountID, webhookID, status, before string, limit int) ([]WebhookMessage, error) {
	if _, err := db.GetWebhook(ctx, accountID, webhookID); err != nil {
		return nil, err
	}
	beforeRow := int64(1<<63 - 1)
	if before != "" {
		err := db.r.QueryRowContext(ctx, `SELECT rowid FROM webhook_messages WHERE id = ? AND endpoint_id = ?`, before, webhookID).Scan(&beforeRow)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, invalidField("before", "is not a message of this webhook")
		}
		if err != nil {
			return nil, err
		}
	}
	query := `SELECT ` + messageColumns + ` FROM webhook_messages m WHERE m.endpoint_id = ? AND m.rowid < ?`
	args := []any{webhookID, beforeRow}
	if status != "" {
		query += ` AND m.status = ?`
		args = append(args, status)
	}
	rows, err := db.r.QueryContext(ctx, query+` ORDER BY m.rowid DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	out := []WebhookMessage{}
	for rows.Next() {
		m, _, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ptrs := make([]*WebhookMessage, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	return out, attachAttempts(ctx, db.r, ptrs)
}

var errWebhookDisabled = &InvalidError{Message: "the webhook is disabled; enable it with PATCH /v1/webhooks/{id} first",
	Fields: map[string]string{"enabled": "is false"}}

// ResendMessage sends a message again, whatever its status, with a fresh
// retry schedule starting now.
func (db *DB) ResendMessage(ctx context.Context, accountID, id string) (WebhookMessage, error) {
	var out WebhookMessage
	err := db.write(ctx, func(t *Tx) error {
		m, err := getMessage(ctx, t.tx, accountID, id)
		if err != nil {
			return err
		}
		var enabled bool
		if err := t.tx.QueryRowContext(ctx, `SELECT enabled FROM webhook_endpoints WHERE id = ?`, m.WebhookID).Scan(&enabled); err != nil {
			return err
		}
		if !enabled && m.Type != EventWebhookTest {
			return errWebhookDisabled
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE webhook_messages SET status = 'pending', tries = 0, next_attempt_at = ?,
			delivered_at = NULL, updated_at = ? WHERE id = ?`, t.now.Unix(), t.now.Unix(), id); err != nil {
			return fmt.Errorf("store: resend message: %w", err)
		}
		t.notify = true
		out, err = getMessage(ctx, t.tx, accountID, id)
		return err
	})
	return out, err
}

// RecoverMessages sends every failed message of an endpoint created at or
// after since again, each with a fresh retry schedule, and reports how many.
func (db *DB) RecoverMessages(ctx context.Context, accountID, webhookID string, since time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(t *Tx) error {
		w, err := getWebhook(ctx, t.tx, accountID, webhookID, t.now)
		if err != nil {
			return err
		}
		if !w.Enabled {
			return errWebhookDisabled
		}
		res, err := t.tx.ExecContext(ctx, `UPDATE webhook_messages SET status = 'pending', tries = 0, next_attempt_at = ?, updated_at = ?
			WHERE endpoint_id = ? AND status = 'failed' AND created_at >= ?`, t.now.Unix(), t.now.Unix(), webhookID, since.Unix())
		if err != nil {
			return fmt.Errorf("store: recover messages: %w", err)
		}
		n, _ = res.RowsAffected()
		t.notify = n > 0
		return nil
	})
	return int(n), err
}

// PendingMessages counts the webhook messages waiting to be delivered, due
// now or retrying later: the depth of the outbox.
func (db *DB) PendingMessages(ctx context.Context) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM webhook_messages WHERE status = 'pending'`).Scan(&n)
	return n, err
}

// PruneWebhooks deletes attempts made before before, and delivered or failed
// messages last changed before it (with their attempts), and drops previous
// secrets whose overlap has ended. It reports how many attempts and messages
// it deleted; a run deletes a bounded number, the next run the rest.
func (db *DB) PruneWebhooks(ctx context.Context, before time.Time) (attempts, messages int, err error) {
	err = db.write(ctx, func(t *Tx) error {
		res, err := t.tx.ExecContext(ctx, `DELETE FROM webhook_attempts WHERE id IN
			(SELECT id FROM webhook_attempts WHERE attempted_at < ? ORDER BY attempted_at LIMIT ?)`, before.Unix(), maxPrune)
		if err != nil {
			return fmt.Errorf("store: prune attempts: %w", err)
		}
		n, _ := res.RowsAffected()
		attempts = int(n)
		res, err = t.tx.ExecContext(ctx, `DELETE FROM webhook_messages WHERE id IN
			(SELECT id FROM webhook_messages WHERE status <> 'pending' AND updated_at < ? LIMIT ?)`, before.Unix(), maxPrune)
		if err != nil {
			return fmt.Errorf("store: prune messages: %w", err)
		}
		n, _ = res.RowsAffected()
		messages = int(n)
		_, err = t.tx.ExecContext(ctx, `UPDATE webhook_endpoints SET old_secret = NULL, old_secret_until = NULL
			WHERE old_secret IS NOT NULL AND old_secret_until <= ?`, t.now.Unix())
		return err
	})
	return attempts, messages, err
}
