package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Webhook signing secrets are the only secrets keyd must be able to read
// back (keys are stored as hashes). They are sealed with AES-256-GCM under a
// master key that never enters the database, so that a copy of the database
// file, its WAL or a backup does not give anyone the power to sign messages.

// SecretKeySize is the size of the master key in bytes.
const SecretKeySize = 32

// sealVersion prefixes every sealed value, so the format can change later.
const sealVersion = 1

// sealer seals and opens values with the master key. Each value gets its own
// random nonce, and is bound to where it is stored (the additional data), so
// a sealed value copied into another row or column does not open.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != SecretKeySize {
		return nil, fmt.Errorf("store: the secret key must be %d bytes, not %d", SecretKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain []byte, where string) []byte {
	out := make([]byte, 1, 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // never fails
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(where))
}

func (s *sealer) open(sealed []byte, where string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("store: sealed value is malformed")
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(where))
	if err != nil {
		return nil, ErrSecretKeyMismatch
	}
	return plain, nil
}

// ParseSecretKey reads a master key given as the standard base64 of 32
// bytes (KEYD_SECRET_KEY, --secret-key, or the key file's content).
func ParseSecretKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(key) != SecretKeySize {
		return nil, fmt.Errorf("store: the secret key must be the base64 of %d bytes (try: openssl rand -base64 32)", SecretKeySize)
	}
	return key, nil
}

// KeyFilePath is where the master key is kept when none is given: next to
// the database, which it must not be copied with.
func KeyFilePath(dbPath string) string { return dbPath + ".key" }

// loadOrCreateKeyFile reads the master key from path, creating the file
// (mode 0600) with a new random key if it does not exist.
func loadOrCreateKeyFile(path string) ([]byte, error) {
	for range 3 {
		b, err := os.ReadFile(path)
		if err == nil {
			if len(bytes.TrimSpace(b)) == 0 {
				continue // another process is writing it right now
			}
			key, err := ParseSecretKey(string(b))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return key, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: read secret key file: %w", err)
		}
		key := make([]byte, SecretKeySize)
		rand.Read(key)
		err = WriteKeyFile(path, key)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: write secret key file: %w", err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("store: secret key file %s is empty", path)
}

// WriteKeyFile writes key into a new file at path, mode 0600, synced; an
// error matching fs.ErrExist when there is one already. A file it could not
// write whole is removed.
func WriteKeyFile(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// WithSecretKey sets the master key that seals webhook signing secrets.
// Without it the key is read from KeyFilePath(path), which is created on
// first use.
func WithSecretKey(key []byte) Option {
	return func(db *DB) { db.secretKey = bytes.Clone(key) }
}

const keyCheckWhere = "secret_key_check"

// PrepareSecrets loads the master key (creating the key file if needed) and
// checks it against the database. Everything that touches webhook secrets
// does this on first use; keyd serve calls it at start so that a wrong key
// stops it at once rather than at the first delivery.
func (db *DB) PrepareSecrets(ctx context.Context) error {
	_, err := db.secrets(ctx)
	return err
}

// secrets returns the sealer, setting it up on first use. It must not be
// called inside a write transaction.
func (db *DB) secrets(ctx context.Context) (*sealer, error) {
	db.sealMu.Lock()
	defer db.sealMu.Unlock()
	if db.sealer != nil {
		return db.sealer, nil
	}
	key := db.secretKey
	if key == nil {
		var err error
		if IsPostgresURL(db.path) {
			return nil, ErrSecretKeyRequired
		}
		if key, err = loadOrCreateKeyFile(KeyFilePath(db.path)); err != nil {
			return nil, err
		}
	}
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	err = db.write(ctx, func(t *Tx) error {
		var sealed []byte
		err := t.tx.QueryRowContext(ctx, `SELECT sealed FROM secret_key_check WHERE id = 1`).Scan(&sealed)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = t.tx.ExecContext(ctx, `INSERT INTO secret_key_check (id, sealed) VALUES (1, ?)`,
				s.seal([]byte("keyd"), keyCheckWhere))
			return err
		}
		if err != nil {
			return err
		}
		_, err = s.open(sealed, keyCheckWhere)
		return err
	})
	if err != nil {
		return nil, err
	}
	db.sealer = s
	return s, nil
}
