package store

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ReceiptKey is an Ed25519 key that signs validation receipts. The newest
// key that is not retired signs; retired keys only verify.
type ReceiptKey struct {
	KID       string
	Public    ed25519.PublicKey
	Private   ed25519.PrivateKey // only from SigningReceiptKey and RotateReceiptKey
	CreatedAt time.Time
	RetiredAt *time.Time
}

// receiptKeyWhere binds a sealed private key to its row.
func receiptKeyWhere(kid string) string { return "receipt_keys.private_sealed:" + kid }

// SigningReceiptKey returns the key that signs receipts, creating the first
// one when there is none. Its private key is sealed in the database with
// the master key, like webhook secrets.
func (db *DB) SigningReceiptKey(ctx context.Context) (ReceiptKey, error) {
	s, err := db.secrets(ctx)
	if err != nil {
		return ReceiptKey{}, err
	}
	k, err := signingReceiptKey(ctx, db.r, s)
	if !errors.Is(err, ErrNotFound) {
		return k, err
	}
	err = db.write(ctx, func(t *Tx) error {
		// Another caller may have created it since.
		if k, err = signingReceiptKey(ctx, t.tx, s); !errors.Is(err, ErrNotFound) {
			return err
		}
		k, err = t.newReceiptKey(ctx, s)
		return err
	})
	return k, err
}

// RotateReceiptKey retires the signing key and makes a new one that signs
// from now on. The retired key stays published (ReceiptPublicKeys) for as
// long as receipts it signed may still be valid.
func (db *DB) RotateReceiptKey(ctx context.Context) (ReceiptKey, error) {
	s, err := db.secrets(ctx)
	if err != nil {
		return ReceiptKey{}, err
	}
	var k ReceiptKey
	err = db.write(ctx, func(t *Tx) error {
		if _, err := t.tx.ExecContext(ctx, `UPDATE receipt_keys SET retired_at = ? WHERE retired_at IS NULL`, t.now.Unix()); err != nil {
			return fmt.Errorf("store: retire receipt key: %w", err)
		}
		k, err = t.newReceiptKey(ctx, s)
		return err
	})
	return k, err
}

// ReceiptPublicKeys returns the public keys a receipt still valid at now
// may be signed with: the signing key, and every key retired less than
// lifetime (the longest a receipt lives) before now. Newest first; without
// private keys.
func (db *DB) ReceiptPublicKeys(ctx context.Context, now time.Time, lifetime time.Duration) ([]ReceiptKey, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT kid, public_key, created_at, retired_at FROM receipt_keys
		WHERE retired_at IS NULL OR retired_at > ? ORDER BY created_at DESC, rowid DESC`, now.Add(-lifetime).Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReceiptKey
	for rows.Next() {
		var (
			k       ReceiptKey
			created int64
			retired sql.NullInt64
		)
		if err := rows.Scan(&k.KID, &k.Public, &created, &retired); err != nil {
			return nil, err
		}
		k.CreatedAt, k.RetiredAt = time.Unix(created, 0).UTC(), timePtr(retired)
		out = append(out, k)
	}
	return out, rows.Err()
}

func signingReceiptKey(ctx context.Context, q queryer, s *sealer) (ReceiptKey, error) {
	var (
		k       ReceiptKey
		sealed  []byte
		created int64
	)
	err := q.QueryRowContext(ctx, `SELECT kid, public_key, private_sealed, created_at FROM receipt_keys
		WHERE retired_at IS NULL ORDER BY created_at DESC, rowid DESC LIMIT 1`).Scan(&k.KID, &k.Public, &sealed, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, err
	}
	seed, err := s.open(sealed, receiptKeyWhere(k.KID))
	if err != nil {
		return k, err
	}
	if len(seed) != ed25519.SeedSize {
		return k, fmt.Errorf("store: receipt key %s is malformed", k.KID)
	}
	k.Private = ed25519.NewKeyFromSeed(seed)
	k.CreatedAt = time.Unix(created, 0).UTC()
	return k, nil
}

func (t *Tx) newReceiptKey(ctx context.Context, s *sealer) (ReceiptKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return ReceiptKey{}, err
	}
	var id [8]byte
	rand.Read(id[:])
	k := ReceiptKey{KID: "rk_" + hex.EncodeToString(id[:]), Public: pub, Private: priv, CreatedAt: t.now}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO receipt_keys (kid, public_key, private_sealed, created_at) VALUES (?, ?, ?, ?)`,
		k.KID, []byte(pub), s.seal(priv.Seed(), receiptKeyWhere(k.KID)), t.now.Unix()); err != nil {
		return ReceiptKey{}, fmt.Errorf("store: create receipt key: %w", err)
	}
	return k, nil
}
