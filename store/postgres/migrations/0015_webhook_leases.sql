-- Several keyd processes may share the outbox. A worker leases the message
-- it sends: lease_owner names the worker, lease_until (unix seconds) is
-- when another may take the message over if no attempt was recorded (the
-- worker died mid-delivery). Both are NULL while no one holds it.
ALTER TABLE webhook_messages ADD COLUMN lease_owner TEXT;
ALTER TABLE webhook_messages ADD COLUMN lease_until BIGINT;
-- A claim skips the endpoints with a message leased: few rows at any time.
CREATE INDEX webhook_messages_leased ON webhook_messages (endpoint_id, lease_until) WHERE lease_until IS NOT NULL;
