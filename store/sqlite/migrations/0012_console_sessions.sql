-- Sessions of the owner console. The cookie holds a random token; only its
-- SHA-256 is kept, so a copy of the database signs no one in. A session is
-- bound to the primary key it was opened with: once that key is reset or
-- the account suspended, the session no longer answers (see Session).
CREATE TABLE console_sessions (
    token_hash   BLOB PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    key_id       TEXT NOT NULL REFERENCES keys (id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_sessions_account ON console_sessions (account_id);

-- Where an action came from when it was not the HTTP API: 'console' for the
-- owner console. NULL for the API, the command line and keyd's own jobs.
ALTER TABLE events ADD COLUMN channel TEXT;

-- The console's audit log narrowed to one key: the events about it.
CREATE INDEX events_target ON events (account_id, target_id, seq) WHERE target_id IS NOT NULL;

-- One-time sign-in links the operator makes for an owner who lost the key
-- (keyd accounts sign-in-link). Only the token's hash is kept; a link is
-- deleted when used.
CREATE TABLE console_links (
    token_hash BLOB PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
