-- Plans: alias_limit NULL means "set per account" (enterprise);
-- rate_limit_per_minute NULL means unlimited.
CREATE TABLE plans (
    name                  TEXT PRIMARY KEY,
    alias_limit           INTEGER CHECK (alias_limit IS NULL OR alias_limit >= 0),
    rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute IS NULL OR rate_limit_per_minute > 0),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

INSERT INTO plans (name, alias_limit, rate_limit_per_minute, created_at, updated_at) VALUES
    ('free',       0,    60,   0, 0),
    ('pro',        5,    600,  0, 0),
    ('mega',       25,   3000, 0, 0),
    ('enterprise', NULL, NULL, 0, 0);

CREATE TABLE accounts (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    email                TEXT NOT NULL,
    plan                 TEXT NOT NULL REFERENCES plans (name) ON UPDATE CASCADE,
    status               TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    credits              INTEGER NOT NULL CHECK (credits >= 0),
    parent_id            TEXT REFERENCES accounts (id),
    alias_limit_override INTEGER CHECK (alias_limit_override IS NULL OR alias_limit_override >= 0),
    -- synthetic marks accounts made by `keyd seed` for load tests.
    synthetic            INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX accounts_parent ON accounts (parent_id) WHERE parent_id IS NOT NULL;

-- Keys hold only the SHA-256 of the key and its last four characters.
-- Times are unix seconds; NULL means "never" / "none".
CREATE TABLE keys (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    type          TEXT NOT NULL CHECK (type IN ('primary', 'alias')),
    name          TEXT NOT NULL,
    -- name_fold is the name folded for the "unique ignoring case" rule.
    name_fold     TEXT NOT NULL,
    hint          TEXT NOT NULL,
    hash          BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    status        TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'expired', 'revoked')),
    scopes        TEXT NOT NULL DEFAULT '["*"]',
    allowed_sites TEXT NOT NULL DEFAULT '[]',
    expires_at    INTEGER,
    valid_until   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX keys_account ON keys (account_id);
CREATE UNIQUE INDEX keys_alias_name ON keys (account_id, name_fold)
    WHERE type = 'alias' AND status <> 'revoked';

-- Every state change appends one row here in the same transaction: the audit
-- log and the source of webhook messages.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT REFERENCES accounts (id),
    type        TEXT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT,
    actor_ip    TEXT,
    target_id   TEXT,
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);
CREATE INDEX events_account ON events (account_id, seq);

-- What validations report about the sites that use a key, flushed in batches.
CREATE TABLE key_sites (
    key_id         TEXT NOT NULL REFERENCES keys (id),
    site           TEXT NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    plugin         TEXT NOT NULL DEFAULT '',
    plugin_version TEXT NOT NULL DEFAULT '',
    wp_version     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key_id, site)
);

-- Per key and UTC day: validations, failed validations and units spent.
CREATE TABLE key_usage_daily (
    key_id      TEXT NOT NULL REFERENCES keys (id),
    day         TEXT NOT NULL,
    validations INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    units       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
);
