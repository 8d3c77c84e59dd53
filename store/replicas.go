package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Several keyd processes, replicas, may serve one shared database
// (PostgreSQL; see engine.Shared), each with its own in-memory key index.
// The promise of one machine holds across them: a change, a revocation
// above all, is refused by the very next validation on every replica. So:
//
//   - Every change is an event, numbered in commit order (engine.BeginWrite)
//     and announced when it commits (engine.AnnounceChanges). Each replica
//     follows the event log (FollowChanges), woken by the announcement and
//     by a short poll, and applies what changed to its index.
//   - Each replica records in the replicas table the last event it has
//     applied and when it last did so (heartbeat, on every pass of its
//     follower).
//   - A write that changed anything returns to its caller once every live
//     replica (heard from within ReplicaSettings.Timeout) has applied it,
//     waiting ReplicaSettings.Wait at most (awaitReplicas).
//
// A replica that cannot reach the database is cut off: it does not know of
// changes made meanwhile, and after Timeout the others stop waiting for it.
// What it then does is ReplicaSettings.RefuseWhenCutOff: keep validating
// from what it knows (the default: with the database down nothing can be
// revoked anyway), or refuse validations until it is back.

// ReplicaSettings say how replicas wait for each other.
type ReplicaSettings struct {
	// Timeout is how long a replica not heard from is still waited for;
	// a replica cut off from the database for as long knows it.
	Timeout time.Duration
	// Wait bounds how long a change waits for the live replicas to apply
	// it; 0 waits as long as Timeout. Then a change is answered only once
	// every replica has applied it or has not been heard from for Timeout
	// (and, set to refuse when cut off, refuses validations); a shorter
	// Wait trades that for a shorter worst case.
	Wait time.Duration
	// RefuseWhenCutOff makes a replica cut off for longer than Timeout
	// refuse validations (RefuseValidations) instead of answering from what
	// it knows.
	RefuseWhenCutOff bool
}

// DefaultReplicaSettings are keyd's defaults.
var DefaultReplicaSettings = ReplicaSettings{Timeout: 3 * time.Second}

// WithReplicaSettings sets how replicas wait for each other.
func WithReplicaSettings(s ReplicaSettings) Option {
	return func(db *DB) { db.replica.settings = s }
}

// replicaState is this process as a replica.
type replicaState struct {
	settings ReplicaSettings
	id       string // set by JoinReplicas; "" for a process that serves nothing
	// confirmed is when the last heartbeat that reached the database was
	// sent (monotonic nanoseconds since started).
	confirmed    atomic.Int64
	started      time.Time
	live         atomic.Int32 // live replicas, this one included, at the last heartbeat
	waitTimeouts atomic.Int64
}

// JoinReplicas registers this process as a replica serving the database
// and catches up on the changes committed before it did, so that from its
// return no change is answered before this replica has applied it. keyd
// serve calls it before it listens; FollowChanges keeps it up to date. It
// does nothing on an engine that is not shared.
func (db *DB) JoinReplicas(ctx context.Context) error {
	if !db.eng.Shared() {
		return nil
	}
	var b [8]byte
	rand.Read(b[:])
	r := &db.replica
	r.id = hex.EncodeToString(b[:])
	r.started = time.Now()
	// Rows of replicas gone for a day are of no use to anyone.
	if _, err := db.w.ExecContext(ctx, `DELETE FROM replicas WHERE seen_at_ms < ?`, time.Now().Add(-24*time.Hour).UnixMilli()); err != nil {
		return fmt.Errorf("store: prune replicas: %w", err)
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.registerLocked(ctx, time.Now()); err != nil {
		return err
	}
	if _, err := db.catchUp(ctx); err != nil {
		return err
	}
	return db.heartbeatLocked(ctx)
}

// registerLocked adds this replica's row, having applied the events up to
// followedSeq at now. writeMu must be held.
func (db *DB) registerLocked(ctx context.Context, now time.Time) error {
	host, _ := os.Hostname()
	_, err := db.w.ExecContext(ctx, `INSERT INTO replicas (id, host, applied_seq, seen_at_ms, started_at) VALUES (?, ?, ?, ?, ?)`,
		db.replica.id, host, db.followedSeq, now.UnixMilli(), db.replica.started.Unix())
	if err != nil {
		return fmt.Errorf("store: register replica: %w", err)
	}
	return nil
}

// LeaveReplicas removes this replica from the table at shutdown, so that no
// change waits for it.
func (db *DB) LeaveReplicas(ctx context.Context) error {
	if db.replica.id == "" {
		return nil
	}
	_, err := db.w.ExecContext(ctx, `DELETE FROM replicas WHERE id = ?`, db.replica.id)
	return err
}

// heartbeatLocked records the last event this replica has applied, and
// reads how many replicas are live. writeMu must be held.
func (db *DB) heartbeatLocked(ctx context.Context) error {
	r := &db.replica
	if r.id == "" {
		return nil
	}
	sent := time.Since(r.started)
	now := time.Now()
	// The live are counted in the same round trip (the subquery sees the
	// table as it was before the update, this replica in it).
	var live int32
	err := db.relaxed(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE replicas SET applied_seq = ?, seen_at_ms = ? WHERE id = ?
			RETURNING (SELECT count(*) FROM replicas WHERE seen_at_ms > ?)`,
			db.followedSeq, now.UnixMilli(), r.id, now.Add(-r.settings.Timeout).UnixMilli()).Scan(&live)
	})
	if errors.Is(err, sql.ErrNoRows) {
		// Pruned as gone by another replica after a long cut-off.
		err = db.registerLocked(ctx, now)
	}
	if err != nil {
		return fmt.Errorf("store: replica heartbeat: %w", err)
	}
	r.confirmed.Store(int64(sent))
	r.live.Store(max(live, 1))
	return nil
}

// relaxed runs fn in a transaction that commits without waiting for the
// disk: a heartbeat lost to a crash of the database server is simply sent
// again, and waiting for its sync would add a disk write to every change's
// round trip through the replicas. Only shared engines have replicas; the
// setting is PostgreSQL's.
func (db *DB) relaxed(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// awaitPoll is how often a change waiting for the replicas looks again:
// each look is one read of a table of a few rows.
const awaitPoll = time.Millisecond

// awaitReplicas returns once every other live replica has applied the
// changes up to event seq, or after ReplicaSettings.Wait.
func (db *DB) awaitReplicas(ctx context.Context, seq int64) {
	r := &db.replica
	if seq == 0 || !db.eng.Shared() {
		return
	}
	wait := r.settings.Wait
	if wait == 0 {
		wait = r.settings.Timeout
	}
	deadline := time.Now().Add(wait)
	for {
		var behind int
		err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM replicas WHERE id <> ? AND applied_seq < ? AND seen_at_ms > ?`,
			r.id, seq, time.Now().Add(-r.settings.Timeout).UnixMilli()).Scan(&behind)
		if err == nil && behind == 0 {
			return
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			r.waitTimeouts.Add(1)
			return
		}
		time.Sleep(min(awaitPoll, left))
	}
}

// ReplicaStats is what this replica knows of the others.
type ReplicaStats struct {
	ID string // "" when not a replica (SQLite, or an operator command)
	// Live is how many replicas were heard from lately, this one included.
	Live int
	// CutOff is true when this replica has not reached the database for
	// longer than ReplicaSettings.Timeout.
	CutOff bool
	// WaitTimeouts counts the changes answered before every live replica
	// had confirmed them.
	WaitTimeouts int64
}

// Replicas reports this replica's view of the others.
func (db *DB) Replicas() ReplicaStats {
	r := &db.replica
	return ReplicaStats{ID: r.id, Live: db.LiveReplicas(), CutOff: db.cutOff(), WaitTimeouts: r.waitTimeouts.Load()}
}

// LiveReplicas is how many replicas were heard from lately, this one
// included: 1 for a database served by one keyd.
func (db *DB) LiveReplicas() int { return max(int(db.replica.live.Load()), 1) }

func (db *DB) cutOff() bool {
	r := &db.replica
	return r.id != "" && time.Since(r.started)-time.Duration(r.confirmed.Load()) > r.settings.Timeout
}

// RefuseValidations reports whether validations must be refused now: this
// replica is cut off from the database for longer than the others wait for
// it, and is set to refuse then. It costs two atomic loads.
func (db *DB) RefuseValidations() bool {
	return db.replica.settings.RefuseWhenCutOff && db.cutOff()
}

// ClaimJobRun reports whether this process should run the scheduled job
// name now, which runs every interval: on a shared database the first
// replica to claim it in each half-interval wins, so that a job runs once
// per schedule across the replicas; alone, a process always runs its jobs.
func (db *DB) ClaimJobRun(ctx context.Context, name string, interval time.Duration) (bool, error) {
	if !db.eng.Shared() {
		return true, nil
	}
	now := time.Now().UnixMilli()
	if _, err := db.w.ExecContext(ctx, `INSERT INTO job_runs (name, started_at_ms) VALUES (?, 0) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return false, db.storageError(err)
	}
	res, err := db.w.ExecContext(ctx, `UPDATE job_runs SET started_at_ms = ? WHERE name = ? AND started_at_ms <= ?`,
		now, name, now-(interval/2).Milliseconds())
	if err != nil {
		return false, db.storageError(err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
