-- Credit pool bookkeeping: what an account has spent, when it is warned
-- about a low pool, and idempotency of usage charges.
ALTER TABLE accounts ADD COLUMN credits_spent INTEGER NOT NULL DEFAULT 0;
-- NULL means 10% of the last top-up or allocation (last_topup).
ALTER TABLE accounts ADD COLUMN low_credit_threshold INTEGER CHECK (low_credit_threshold IS NULL OR low_credit_threshold >= 0);
ALTER TABLE accounts ADD COLUMN last_topup INTEGER NOT NULL DEFAULT 0;
-- 1 while credits.low may be sent; cleared when it is, set again by a top-up.
ALTER TABLE accounts ADD COLUMN low_credit_armed INTEGER NOT NULL DEFAULT 1;

UPDATE accounts SET last_topup = credits;

-- The first answer to a usage charge, by the caller's idempotency key.
CREATE TABLE usage_idempotency (
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    idem_key      TEXT NOT NULL,
    units         INTEGER NOT NULL,
    credits_after INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX usage_idempotency_created ON usage_idempotency (created_at);
