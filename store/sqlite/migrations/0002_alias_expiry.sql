-- When the alias.expiring warning went out for the current expiry; cleared
-- when the expiry changes so the new date gets its own warning.
ALTER TABLE keys ADD COLUMN expiring_notified_at INTEGER;

CREATE INDEX keys_alias_expiry ON keys (expires_at)
    WHERE type = 'alias' AND status = 'active' AND expires_at IS NOT NULL;
CREATE INDEX keys_grace ON keys (valid_until)
    WHERE status = 'active' AND valid_until IS NOT NULL;
