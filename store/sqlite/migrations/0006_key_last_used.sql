-- A key's last use moves out of the keys table into a narrow table of its
-- own. The activity flush writes it hourly for every key used, and keys are
-- used in no particular order: in the wide keys table nearly every one of
-- those writes dirtied a page of its own (measured on a million keys, some
-- 4 s of CPU for the first flush after 100,000 keys were used). Here about
-- a hundred keys share a page.
CREATE TABLE key_last_used (
    key_id       TEXT PRIMARY KEY REFERENCES keys (id),
    last_used_at INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO key_last_used (key_id, last_used_at)
    SELECT id, last_used_at FROM keys WHERE last_used_at IS NOT NULL ORDER BY id;

ALTER TABLE keys DROP COLUMN last_used_at;
