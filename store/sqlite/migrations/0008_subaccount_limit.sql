-- Subaccount limits, like the alias limit: a plan's subaccount_limit NULL
-- means "set per account" (enterprise; zero until the operator sets the
-- account's override), and an account's override wins over its plan.
ALTER TABLE plans ADD COLUMN subaccount_limit INTEGER CHECK (subaccount_limit IS NULL OR subaccount_limit >= 0);
-- The seeded plans get their limits; plans an operator added get NULL and so
-- allow no new subaccount until the operator sets a limit (existing
-- subaccounts stay).
UPDATE plans SET subaccount_limit = CASE name WHEN 'free' THEN 0 WHEN 'pro' THEN 5 WHEN 'mega' THEN 25 END;

ALTER TABLE accounts ADD COLUMN subaccount_limit_override INTEGER
    CHECK (subaccount_limit_override IS NULL OR subaccount_limit_override >= 0);
