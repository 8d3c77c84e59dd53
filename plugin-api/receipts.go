package pluginapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"keyd/store"
)

// Signed receipts let a site keep working while keyd cannot be reached: a
// VALID answer asked with receipt=true carries a compact JWS (EdDSA over
// Ed25519) saying which key was valid for which site, until when. The site
// checks it offline against the public keys at receiptKeysPath.

// ReceiptStore is what receipts need from keyd's store.
type ReceiptStore interface {
	SigningReceiptKey(ctx context.Context) (store.ReceiptKey, error)
	ReceiptPublicKeys(ctx context.Context, now time.Time, lifetime time.Duration) ([]store.ReceiptKey, error)
}

// receiptKeysPath is where the receipt keys are published, as a JWKS.
const receiptKeysPath = "/.well-known/keyd-receipt-keys.json"

// DefaultReceiptLifetime is how long a receipt is valid unless configured.
const DefaultReceiptLifetime = 72 * time.Hour

// receiptKeyRefresh is how often the signing key is read again, so that a
// rotation made by another process (keyd receipts rotate) is taken up. A
// retired key stays published this much longer than a receipt lives, as it
// may have gone on signing for as long.
const receiptKeyRefresh = time.Minute

// maxCachedReceipts bounds the receipts kept for reuse.
const maxCachedReceipts = 1 << 16

// receiptClaims is a receipt's payload. iat and exp are JWT's names, so
// that JWT libraries check the validity by themselves.
type receiptClaims struct {
	Issuer    string   `json:"iss"`
	KeyID     string   `json:"key_id"`
	AccountID string   `json:"account_id"`
	Site      string   `json:"site"`
	Scopes    []string `json:"scopes"`
	Plan      string   `json:"plan"`
	IssuedAt  int64    `json:"iat"`
	Expires   int64    `json:"exp"`
}

// receiptIssuer is every receipt's iss.
const receiptIssuer = "keyd"

// receipts signs receipts and keeps each for reuse: the same key, site and
// state get the same receipt until half its life has passed. The state is
// the key's StateVersion, which any change to the key or its account
// moves, so a reset, revocation, deactivation or narrowing ends the reuse
// at once.
type receipts struct {
	store    ReceiptStore
	lifetime time.Duration
	log      *slog.Logger

	signer     atomic.Pointer[receiptSigner]
	refreshing atomic.Bool
	loadMu     sync.Mutex // one first load at a time

	mu    sync.RWMutex
	cache map[receiptCacheKey]cachedReceipt
}

type receiptSigner struct {
	kid      string
	signer   jose.Signer
	loadedAt time.Time
}

type receiptCacheKey struct {
	keyID, site string
	version     uint64
}

type cachedReceipt struct {
	token      string
	reuseUntil int64 // unix seconds
}

func newReceipts(st ReceiptStore, lifetime time.Duration, log *slog.Logger) *receipts {
	if lifetime == 0 {
		lifetime = DefaultReceiptLifetime
	}
	return &receipts{store: st, lifetime: lifetime, log: log, cache: make(map[receiptCacheKey]cachedReceipt)}
}

// issue returns a receipt for the key v, found valid for site at now.
func (r *receipts) issue(ctx context.Context, v *store.KeyView, site string, now time.Time) (string, error) {
	ck := receiptCacheKey{keyID: v.KeyID, site: site, version: v.StateVersion}
	r.mu.RLock()
	c, ok := r.cache[ck]
	r.mu.RUnlock()
	if ok && now.Unix() < c.reuseUntil {
		return c.token, nil
	}
	sg, err := r.currentSigner(ctx, now)
	if err != nil {
		return "", err
	}
	// A receipt never outlives the key: an alias's expiry and a reset
	// key's grace end it sooner.
	iat, exp := now.Unix(), now.Add(r.lifetime).Unix()
	for _, end := range [...]int64{v.ExpiresAt, v.ValidUntil} {
		if end != 0 && end < exp {
			exp = end
		}
	}
	payload, err := json.Marshal(receiptClaims{Issuer: receiptIssuer, KeyID: v.KeyID, AccountID: v.AccountID, Site: site,
		Scopes: v.Scopes, Plan: v.Plan, IssuedAt: iat, Expires: exp})
	if err != nil {
		return "", err
	}
	jws, err := sg.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign receipt: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	// Stored keys are copies: the view's strings are pieces of larger ones
	// (the key's texts, the request body) that the cache must not hold.
	ck.keyID, ck.site = strings.Clone(ck.keyID), strings.Clone(ck.site)
	r.mu.Lock()
	if len(r.cache) >= maxCachedReceipts {
		r.sweep(iat)
	}
	r.cache[ck] = cachedReceipt{token: token, reuseUntil: iat + (exp-iat)/2}
	r.mu.Unlock()
	return token, nil
}

// sweep drops the receipts no longer reused and, if that does not make
// room, an eighth of the rest, taken at random (map order is random): when
// more keys ask for receipts than the cache holds, most of the cached ones
// stay reusable, where emptying it would make every next request sign. It
// must be called with mu held.
func (r *receipts) sweep(now int64) {
	for k, c := range r.cache {
		if now >= c.reuseUntil {
			delete(r.cache, k)
		}
	}
	for k := range r.cache {
		if len(r.cache) < maxCachedReceipts-maxCachedReceipts/8 {
			break
		}
		delete(r.cache, k)
	}
}

// currentSigner is the signer of the current key. It is loaded on first
// use and read again in the background every receiptKeyRefresh.
func (r *receipts) currentSigner(ctx context.Context, now time.Time) (*receiptSigner, error) {
	if sg := r.signer.Load(); sg != nil {
		if now.Sub(sg.loadedAt) >= receiptKeyRefresh && r.refreshing.CompareAndSwap(false, true) {
			go func() {
				defer r.refreshing.Store(false)
				if _, err := r.load(context.Background(), now); err != nil {
					r.log.Error("read the receipt signing key", "err", err)
				}
			}()
		}
		return sg, nil
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if sg := r.signer.Load(); sg != nil {
		return sg, nil
	}
	return r.load(ctx, now)
}

func (r *receipts) load(ctx context.Context, now time.Time) (*receiptSigner, error) {
	k, err := r.store.SigningReceiptKey(ctx)
	if err != nil {
		return nil, err
	}
	if old := r.signer.Load(); old != nil && old.kid == k.KID {
		sg := *old
		sg.loadedAt = now
		r.signer.Store(&sg)
		return &sg, nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.KID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	sg := &receiptSigner{kid: k.KID, signer: signer, loadedAt: now}
	r.signer.Store(sg)
	return sg, nil
}

// ReceiptKeySet is the JWKS of receipt public keys, as served at
// /.well-known/keyd-receipt-keys.json and printed by keyd receipts
// public-key.
func ReceiptKeySet(keys []store.ReceiptKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public, KeyID: k.KID, Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	return json.Marshal(set)
}

// publishedKeys are the public keys a receipt still valid now may be
// signed with, the signing key first (created if there is none yet).
func (r *receipts) publishedKeys(ctx context.Context, now time.Time) ([]store.ReceiptKey, error) {
	if _, err := r.currentSigner(ctx, now); err != nil {
		return nil, err
	}
	return r.store.ReceiptPublicKeys(ctx, now, r.lifetime+receiptKeyRefresh)
}

// getReceiptKeys is GET /.well-known/keyd-receipt-keys.json.
func (s *server) getReceiptKeys(c *gin.Context) {
	keys, err := s.receipts.publishedKeys(c.Request.Context(), s.now())
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := ReceiptKeySet(keys)
	if err != nil {
		writeError(c, err)
		return
	}
	// Verifiers may cache it briefly; a new key is published here before
	// its first receipt can reach them.
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

// receiptFlag is validate's receipt field: true or false in JSON (or the
// strings below), "true", "false", "1" or "0" in a form.
type receiptFlag string

func (f *receiptFlag) UnmarshalJSON(b []byte) error {
	var str string
	switch {
	case string(b) == "null":
		*f = ""
	case json.Unmarshal(b, &str) == nil:
		*f = receiptFlag(str)
	default:
		// true, false, or anything else, which the validator refuses
		// with the field's name.
		*f = receiptFlag(b)
	}
	return nil
}

// on reports whether a receipt was asked for.
func (f receiptFlag) on() bool { return f == "true" || f == "1" }

// known reports whether f is one of the values receipt takes.
func (f receiptFlag) known() bool {
	switch f {
	case "", "true", "false", "1", "0":
		return true
	}
	return false
}
