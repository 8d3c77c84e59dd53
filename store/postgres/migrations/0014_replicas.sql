-- The keyd processes serving the database, each with the last change (event
-- sequence) it has applied to its key index and when it last said so. A
-- change returns to its caller once every replica seen lately has applied
-- it (see store/replicas.go). Only shared engines (PostgreSQL) use it; it
-- is here so that schema versions mean the same on both engines.
CREATE TABLE replicas (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    applied_seq BIGINT NOT NULL,
    seen_at_ms  BIGINT NOT NULL,
    started_at  BIGINT NOT NULL
);

-- The last start of each scheduled job, so that replicas run a job once per
-- schedule between them (see store/jobruns.go).
CREATE TABLE job_runs (
    name          TEXT PRIMARY KEY,
    started_at_ms BIGINT NOT NULL
);
