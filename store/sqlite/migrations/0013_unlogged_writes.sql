-- Counts the write transactions that changed credits or what a key spent
-- without writing an event (charges). The index snapshot records the count
-- it saw: when it is unchanged at the next start, the snapshot's credits are
-- the database's, and the two million accounts of ten million keys need not
-- be read again (see store/snapshot.go).
CREATE TABLE unlogged_writes (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL
);
INSERT INTO unlogged_writes (id, count) VALUES (1, 0);
