-- The activity flush writes a row into these tables for every key used
-- (counters every flush, sites hourly). As rowid tables each row lived in the
-- table and again in the index on its primary key, two B-trees and so two
-- pages written per row. Keyed by their primary key alone (WITHOUT ROWID)
-- they are one B-tree each: measured on a million keys, a flush of daily
-- counters costs less than half the time.
CREATE TABLE key_sites_new (
    key_id         TEXT NOT NULL REFERENCES keys (id),
    site           TEXT NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    plugin         TEXT NOT NULL DEFAULT '',
    plugin_version TEXT NOT NULL DEFAULT '',
    wp_version     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key_id, site)
) WITHOUT ROWID;
INSERT INTO key_sites_new (key_id, site, first_seen, last_seen, plugin, plugin_version, wp_version)
    SELECT key_id, site, first_seen, last_seen, plugin, plugin_version, wp_version FROM key_sites;
DROP TABLE key_sites;
ALTER TABLE key_sites_new RENAME TO key_sites;

CREATE TABLE key_usage_daily_new (
    key_id      TEXT NOT NULL REFERENCES keys (id),
    day         TEXT NOT NULL,
    validations INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    units       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
) WITHOUT ROWID;
INSERT INTO key_usage_daily_new (key_id, day, validations, failed, units)
    SELECT key_id, day, validations, failed, units FROM key_usage_daily;
DROP TABLE key_usage_daily;
ALTER TABLE key_usage_daily_new RENAME TO key_usage_daily;
