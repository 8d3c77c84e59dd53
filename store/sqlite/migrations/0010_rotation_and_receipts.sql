-- When a primary key was replaced by a reset. Validation tells the sites
-- still using the old key (rotation: replaced_at, grace_ends_at) so that a
-- plugin can warn before the grace period ends.
ALTER TABLE keys ADD COLUMN replaced_at INTEGER;

-- Until now nothing changed a replaced primary key after its reset but its
-- revocation, so its updated_at is when it was replaced.
UPDATE keys SET replaced_at = updated_at WHERE type = 'primary' AND valid_until IS NOT NULL;

-- Ed25519 keys that sign validation receipts. The private key is sealed
-- with the master key, like webhook secrets. The newest key not retired
-- signs; a retired key's public key stays published until the last receipt
-- it signed has expired.
CREATE TABLE receipt_keys (
    kid TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    private_sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
