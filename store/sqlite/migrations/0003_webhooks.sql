-- Webhook endpoints registered by account owners. Signing secrets are sealed
-- (AES-256-GCM) with a master key kept outside the database; see seal.go.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    events          TEXT NOT NULL,            -- JSON array of event patterns
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,                     -- owner, gone or failing; NULL while enabled
    disabled_at     INTEGER,
    secret          BLOB NOT NULL,            -- sealed current secret
    old_secret      BLOB,                     -- sealed previous secret during a rotation
    old_secret_until INTEGER,                 -- when the previous secret stops signing
    -- Events up to this sequence number happened before the endpoint
    -- existed and are never sent to it.
    after_seq       INTEGER NOT NULL,
    failing_since   INTEGER,                  -- first failure after the last success
    last_success_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id);

-- The outbox: one message per event and endpoint. The body is stored once,
-- as the exact bytes every attempt signs and sends.
CREATE TABLE webhook_messages (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL,
    event_seq       INTEGER NOT NULL,
    event_type      TEXT NOT NULL,
    body            BLOB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    -- tries counts attempts in the current retry schedule; a resend or a
    -- recovery starts a new one. Every attempt is in webhook_attempts.
    tries           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,                  -- set while pending
    last_attempt_at INTEGER,
    delivered_at    INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- Fanning out again after a crash cannot make a second message.
    UNIQUE (event_seq, endpoint_id)
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id);
CREATE INDEX webhook_messages_endpoint_status ON webhook_messages (endpoint_id, status, created_at);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    attempted_at INTEGER NOT NULL,
    status_code  INTEGER NOT NULL DEFAULT 0,  -- 0: no answer
    duration_ms  INTEGER NOT NULL,
    response     TEXT NOT NULL DEFAULT '',    -- first 1 KiB of the answer
    error        TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL
);
CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id);
CREATE INDEX webhook_attempts_time ON webhook_attempts (attempted_at);

-- How far the fan-out has read the event log. No endpoint exists yet, so
-- earlier events have no one to go to.
CREATE TABLE webhook_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, last_seq) SELECT 1, coalesce(max(seq), 0) FROM events;

-- A value sealed with the master key, to tell at start-up that the key is
-- the one the secrets were sealed with.
CREATE TABLE secret_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BLOB NOT NULL
);
