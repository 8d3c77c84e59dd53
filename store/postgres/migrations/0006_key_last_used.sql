-- A key's last use moves out of the keys table into a narrow table of its
-- own. The activity flush writes it hourly for every key used, and keys are
-- used in no particular order: in the wide keys table nearly every one of
-- those writes touched a row of its own; here the rows are narrow.
CREATE TABLE key_last_used (
    key_id       TEXT PRIMARY KEY REFERENCES keys (id),
    last_used_at BIGINT NOT NULL
);

INSERT INTO key_last_used (key_id, last_used_at)
    SELECT id, last_used_at FROM keys WHERE last_used_at IS NOT NULL ORDER BY id;

ALTER TABLE keys DROP COLUMN last_used_at;
