package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// How long an owner console session lasts: it ends after SessionIdleTimeout
// without a request, and SessionMaxAge after it began whatever happens.
const (
	SessionIdleTimeout = 12 * time.Hour
	SessionMaxAge      = 7 * 24 * time.Hour
)

// sessionTouchEvery is how stale last_seen_at may get before a request
// writes it again: a page view need not be a write, and the idle timeout
// loses at most this much.
const sessionTouchEvery = time.Minute

// Session is a signed-in owner console session.
type Session struct {
	AccountID string
	KeyID     string // the primary key it was opened with
	CreatedAt time.Time
}

// CreateSession opens a console session for the account's current primary
// key keyID and returns its token, for the cookie; only its hash is stored.
// Sessions of the account that have timed out are removed on the way.
func (db *DB) CreateSession(ctx context.Context, accountID, keyID string) (string, error) {
	var raw [32]byte
	rand.Read(raw[:]) // never fails
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	hash := sha256.Sum256([]byte(token))
	now := db.now().Unix()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if _, err := db.w.ExecContext(ctx, `DELETE FROM console_sessions WHERE account_id = ? AND (created_at <= ? OR last_seen_at <= ?)`,
		accountID, now-int64(SessionMaxAge/time.Second), now-int64(SessionIdleTimeout/time.Second)); err != nil {
		return "", storageError(fmt.Errorf("store: prune sessions: %w", err))
	}
	if _, err := db.w.ExecContext(ctx, `INSERT INTO console_sessions (token_hash, account_id, key_id, created_at, last_seen_at)
		VALUES (?, ?, ?, ?, ?)`, hash[:], accountID, keyID, now, now); err != nil {
		return "", storageError(fmt.Errorf("store: create session: %w", err))
	}
	return token, nil
}

// Session finds the session of token and marks it used now. It is
// ErrNotFound when there is none, or when it has ended: timed out (idle or
// too old), its primary key reset, the account (or its parent) suspended. A session found
// ended is removed.
func (db *DB) Session(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, ErrNotFound
	}
	hash := sha256.Sum256([]byte(token))
	var (
		s                Session
		created, seen    int64
		keyLive, accLive bool
	)
	err := db.r.QueryRowContext(ctx, `SELECT s.account_id, s.key_id, s.created_at, s.last_seen_at,
			k.type = 'primary' AND k.status = 'active' AND k.valid_until IS NULL AND k.account_id = s.account_id,
			a.status = 'active' AND coalesce((SELECT p.status FROM accounts p WHERE p.id = a.parent_id), 'active') = 'active'
		FROM console_sessions s JOIN keys k ON k.id = s.key_id JOIN accounts a ON a.id = s.account_id
		WHERE s.token_hash = ?`, hash[:]).Scan(&s.AccountID, &s.KeyID, &created, &seen, &keyLive, &accLive)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, err
	}
	now := db.now()
	s.CreatedAt = time.Unix(created, 0).UTC()
	lastSeen := time.Unix(seen, 0)
	ended := !keyLive || !accLive || !now.Before(s.CreatedAt.Add(SessionMaxAge)) || !now.Before(lastSeen.Add(SessionIdleTimeout))
	switch {
	case ended:
		if err := db.EndSession(ctx, token); err != nil {
			return Session{}, err
		}
		return Session{}, ErrNotFound
	case now.Sub(lastSeen) >= sessionTouchEvery:
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
		if _, err := db.w.ExecContext(ctx, `UPDATE console_sessions SET last_seen_at = ? WHERE token_hash = ?`, now.Unix(), hash[:]); err != nil {
			return Session{}, storageError(fmt.Errorf("store: touch session: %w", err))
		}
	}
	return s, nil
}

// EndSession ends the session of token (signing out); ending one that does
// not exist is not an error.
func (db *DB) EndSession(ctx context.Context, token string) error {
	hash := sha256.Sum256([]byte(token))
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if _, err := db.w.ExecContext(ctx, `DELETE FROM console_sessions WHERE token_hash = ?`, hash[:]); err != nil {
		return storageError(fmt.Errorf("store: end session: %w", err))
	}
	return nil
}
