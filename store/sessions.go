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
		return "", db.storageError(fmt.Errorf("store: prune sessions: %w", err))
	}
	if _, err := db.w.ExecContext(ctx, `INSERT INTO console_sessions (token_hash, account_id, key_id, created_at, last_seen_at)
		VALUES (?, ?, ?, ?, ?)`, hash[:], accountID, keyID, now, now); err != nil {
		return "", db.storageError(fmt.Errorf("store: create session: %w", err))
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
			return Session{}, db.storageError(fmt.Errorf("store: touch session: %w", err))
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
		return db.storageError(fmt.Errorf("store: end session: %w", err))
	}
	return nil
}

// SignInLinkLife is how long a one-time sign-in link works.
const SignInLinkLife = 15 * time.Minute

// CreateSignInLink makes a one-time console sign-in link for an owner who
// lost the key: its token (for the URL; only the hash is stored) and when
// it stops working. The account must exist and be active.
func (db *DB) CreateSignInLink(ctx context.Context, actor Actor, accountID string) (string, time.Time, error) {
	var raw [32]byte
	rand.Read(raw[:]) // never fails
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	hash := sha256.Sum256([]byte(token))
	var expires time.Time
	err := db.write(ctx, func(t *Tx) error {
		acc, err := getAccount(ctx, t.tx, accountID)
		if err != nil {
			return err
		}
		if acc.Status != AccountActive {
			return ErrAccountSuspended
		}
		expires = t.now.Add(SignInLinkLife)
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM console_links WHERE expires_at <= ?`, t.now.Unix()); err != nil {
			return fmt.Errorf("store: prune sign-in links: %w", err)
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO console_links (token_hash, account_id, expires_at, created_at) VALUES (?, ?, ?, ?)`,
			hash[:], accountID, expires.Unix(), t.now.Unix()); err != nil {
			return fmt.Errorf("store: create sign-in link: %w", err)
		}
		_, err = t.event(ctx, accountID, EventSignInLink, actor, accountID, SignInLinkData{
			AccountID: accountID, ExpiresAt: expires.Format(time.RFC3339)})
		return err
	})
	return token, expires, err
}

// SignInLinkAccount is the account a sign-in link opens, without using it;
// ErrNotFound when the link is unknown, used or expired.
func (db *DB) SignInLinkAccount(ctx context.Context, token string) (string, error) {
	hash := sha256.Sum256([]byte(token))
	var accountID string
	err := db.r.QueryRowContext(ctx, `SELECT account_id FROM console_links WHERE token_hash = ? AND expires_at > ?`,
		hash[:], db.now().Unix()).Scan(&accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return accountID, err
}

// UseSignInLink spends a one-time link: it opens a session for the
// account's current primary key and returns its token. ErrNotFound when
// the link is unknown, used or expired; ErrAccountSuspended when the
// account is no longer active.
func (db *DB) UseSignInLink(ctx context.Context, token string) (Session, string, error) {
	hash := sha256.Sum256([]byte(token))
	var s Session
	err := db.write(ctx, func(t *Tx) error {
		var expires int64
		err := t.tx.QueryRowContext(ctx, `DELETE FROM console_links WHERE token_hash = ? RETURNING account_id, expires_at`, hash[:]).
			Scan(&s.AccountID, &expires)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && expires <= t.now.Unix()) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var status string
		err = t.tx.QueryRowContext(ctx, `SELECT k.id, a.status FROM keys k JOIN accounts a ON a.id = k.account_id
			WHERE k.account_id = ? AND k.type = 'primary' AND k.status = 'active' AND k.valid_until IS NULL`, s.AccountID).Scan(&s.KeyID, &status)
		if err != nil {
			return err
		}
		if status != AccountActive {
			return ErrAccountSuspended
		}
		return nil
	})
	if err != nil {
		return Session{}, "", err
	}
	// The link is spent either way; the session is a separate write.
	sessionToken, err := db.CreateSession(ctx, s.AccountID, s.KeyID)
	return s, sessionToken, err
}
