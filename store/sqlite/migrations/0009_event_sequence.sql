-- Receivers of webhooks need to know which of two events about the same
-- thing came last. A timestamp in whole seconds cannot tell them, and the
-- global seq would tell one account how busy the others are. So every
-- event of an account gets account_seq, which counts that account's
-- events in commit order (1, 2, 3, ...), and its time in milliseconds.
ALTER TABLE events ADD COLUMN account_seq INTEGER;

-- Past events are numbered in the order they were committed.
UPDATE events SET account_seq = numbered.n
    FROM (SELECT seq, row_number() OVER (PARTITION BY account_id ORDER BY seq) AS n
          FROM events WHERE account_id IS NOT NULL) AS numbered
    WHERE events.seq = numbered.seq;

-- Unique per account; also how the next number is found.
CREATE UNIQUE INDEX events_account_seq ON events (account_id, account_seq)
    WHERE account_id IS NOT NULL;

-- Renamed, so that no query can go on reading the milliseconds as seconds.
-- Past events keep their second, at .000.
ALTER TABLE events RENAME COLUMN created_at TO created_at_ms;
UPDATE events SET created_at_ms = created_at_ms * 1000;
