-- A key (an alias or a primary key) may cap what it spends of its
-- account's shared pool: spend_limit units per spend_period (a UTC day, a
-- UTC month, or in total). Both are set or both are NULL.
ALTER TABLE keys ADD COLUMN spend_limit INTEGER CHECK (spend_limit IS NULL OR spend_limit > 0);
ALTER TABLE keys ADD COLUMN spend_period TEXT CHECK (spend_period IS NULL OR spend_period IN ('day', 'month', 'total'));

-- What a key with a limit has spent in the period that began at
-- period_start (unix seconds; 0 for 'total'), written in the same
-- transaction as the charge. A row of an earlier period counts as nothing
-- spent. notified_period is the period_start for which
-- key.spend_limit_reached went out, so it goes out once per period.
CREATE TABLE key_spend (
    key_id          TEXT PRIMARY KEY REFERENCES keys (id),
    period_start    INTEGER NOT NULL,
    spent           INTEGER NOT NULL CHECK (spent >= 0),
    notified_period INTEGER
) WITHOUT ROWID;

-- A replayed charge answers with the key's allowance as the first answer
-- gave it.
ALTER TABLE usage_idempotency ADD COLUMN spend_limit INTEGER;
ALTER TABLE usage_idempotency ADD COLUMN spend_period TEXT;
ALTER TABLE usage_idempotency ADD COLUMN spent_after INTEGER;

-- A key may count the sites it is used on: max_sites slots, each taken by
-- the first validation from a new site (host). release_after (seconds)
-- frees the slot of a site not seen for that long.
ALTER TABLE keys ADD COLUMN max_sites INTEGER CHECK (max_sites IS NULL OR max_sites > 0);
ALTER TABLE keys ADD COLUMN release_after INTEGER CHECK (release_after IS NULL OR release_after > 0);

-- The sites holding a slot of a key. last_seen is written by the job that
-- releases idle sites (validation keeps it in memory meanwhile).
CREATE TABLE key_activations (
    key_id       TEXT NOT NULL REFERENCES keys (id),
    host         TEXT NOT NULL,
    activated_at INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    PRIMARY KEY (key_id, host)
) WITHOUT ROWID;
