package store

import (
	"context"
	"database/sql"
	"strings"
	"sync"

	"keyd/store/keyindex"
)

// Charges write no event (see unloggedWrites), so the event log does not
// carry them to the other replicas. On a shared engine a replica that
// charged announces the accounts and the limited keys it charged instead,
// and the others read those accounts' credits and what those keys spent
// afresh, so that validation everywhere shows a pool within moments of a
// charge made anywhere. An announcement made while a replica was not
// listening is lost, so after each (re)connection a replica reads every
// account's credits and every limited key's spending.
//
// The reads are made, and the index set from them, holding writeMu, as the
// index is set after this process's own writes: each read sees at least
// what the one before it saw, so a pool in the index never goes back to an
// older figure.

// maxAnnouncement bounds an announcement's payload (PostgreSQL's NOTIFY
// takes under 8,000 bytes).
const maxAnnouncement = 7000

// chargedPrefix starts an announcement of charges: "charged", the
// announcing replica's id ("-" for a process that is no replica), then the
// ids of the accounts and keys charged, separated by spaces. An empty
// payload announces events.
const chargedPrefix = "charged "

// chargesHeard is what a replica has heard charged elsewhere and not yet
// read.
type chargesHeard struct {
	mu  sync.Mutex
	all bool // everything: announcements may have been lost
	ids map[string]bool
}

// announceCharges tells the other replicas, when tx commits, which
// accounts and limited keys t charged. writeMu must be held.
func (db *DB) announceCharges(ctx context.Context, tx *sql.Tx, t *Tx) error {
	if !db.eng.Shared() || (len(t.credits) == 0 && len(t.keySpent) == 0) {
		return nil
	}
	ids := make([]string, 0, len(t.credits)+len(t.keySpent))
	for id := range t.credits {
		ids = append(ids, id)
	}
	for pos := range t.keySpent {
		_, keyID := db.index.KeyOwner(pos)
		ids = append(ids, keyID)
	}
	from := db.replica.id
	if from == "" {
		from = "-"
	}
	var b strings.Builder
	for i, id := range ids {
		if b.Len() == 0 {
			b.WriteString(chargedPrefix + from)
		}
		b.WriteString(" " + id)
		if i == len(ids)-1 || b.Len()+1+len(ids[i+1]) > maxAnnouncement {
			if err := db.eng.AnnounceChanges(ctx, tx, b.String()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	return nil
}

// heard takes an announcement in: it reports whether it announced events,
// or charges made by another replica, which it notes for reading.
func (h *chargesHeard) heard(payload, self string) (events, charges bool) {
	rest, ok := strings.CutPrefix(payload, chargedPrefix)
	if !ok {
		return true, false
	}
	fields := strings.Fields(rest)
	if len(fields) < 2 || (self != "" && fields[0] == self) {
		return false, false // this replica's own charges are in its index
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ids == nil {
		h.ids = map[string]bool{}
	}
	for _, id := range fields[1:] {
		h.ids[id] = true
	}
	return false, true
}

// missedSome notes that announcements may have been lost.
func (h *chargesHeard) missedSome() {
	h.mu.Lock()
	h.all = true
	h.mu.Unlock()
}

// take returns what there is to read and forgets it; put gives it back
// when reading it failed.
func (h *chargesHeard) take() (all bool, ids map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all, ids = h.all, h.ids
	h.all, h.ids = false, nil
	return all, ids
}

func (h *chargesHeard) put(all bool, ids map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all = h.all || all
	if h.ids == nil {
		h.ids = map[string]bool{}
	}
	for id := range ids {
		h.ids[id] = true
	}
}

// followCharges reads what was heard charged elsewhere into the index.
// Charges come many times a second, so this is all a follower does for
// them: no catch-up on the event log, no heartbeat.
func (db *DB) followCharges(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.readChargesLocked(ctx)
}

// readChargesLocked reads what was heard charged elsewhere into the index.
// writeMu must be held.
func (db *DB) readChargesLocked(ctx context.Context) error {
	all, ids := db.charges.take()
	if !all && len(ids) == 0 {
		return nil
	}
	var accounts, keys []any
	for id := range ids {
		switch {
		case strings.HasPrefix(id, prefixAccount):
			accounts = append(accounts, id)
		case strings.HasPrefix(id, prefixKey):
			keys = append(keys, id)
		}
	}
	if err := db.readCharged(ctx, all, accounts, keys); err != nil {
		db.charges.put(all, ids)
		return err
	}
	return nil
}

// chargedBatch bounds the ids one query reads.
const chargedBatch = 500

// creditsQuery reads accounts' pools, spentQuery what keys with spend
// limits spent, by the keys' hashes; each for all, or with a WHERE clause
// added.
const (
	creditsQuery = `SELECT id, credits FROM accounts`
	spentQuery   = `SELECT k.hash, s.period_start, s.spent FROM key_spend s JOIN keys k ON k.id = s.key_id`
)

// readCharged reads the credits of accounts and what keys spent into the
// index; all of them when all is set.
func (db *DB) readCharged(ctx context.Context, all bool, accounts, keys []any) error {
	if all {
		return readPools(ctx, db.w, db.index, creditsQuery, spentQuery, nil)
	}
	for len(accounts) > 0 {
		n := min(len(accounts), chargedBatch)
		if err := readPools(ctx, db.w, db.index, creditsQuery+` WHERE id IN (?`+strings.Repeat(", ?", n-1)+`)`, "", accounts[:n]); err != nil {
			return err
		}
		accounts = accounts[n:]
	}
	for len(keys) > 0 {
		n := min(len(keys), chargedBatch)
		if err := readPools(ctx, db.w, db.index, "", spentQuery+` WHERE s.key_id IN (?`+strings.Repeat(", ?", n-1)+`)`, keys[:n]); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// readPools runs the credits query and the spending query, either of them
// empty for none, with args, and sets ix from their rows.
func readPools(ctx context.Context, q queryer, ix *keyindex.Index, creditsQuery, spentQuery string, args []any) error {
	if creditsQuery != "" {
		rows, err := q.QueryContext(ctx, creditsQuery, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id      sql.RawBytes
				credits int64
			)
			if err := rows.Scan(&id, &credits); err != nil {
				return err
			}
			// An account the index does not hold yet comes with its
			// event (or the snapshot's catch-up), credits and all.
			if n, err := parseID(prefixAccount, string(id)); err == nil {
				ix.SetCredits(n, credits)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if spentQuery != "" {
		rows, err := q.QueryContext(ctx, spentQuery, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				hash  sql.RawBytes
				spent keyindex.Spend
			)
			if err := rows.Scan(&hash, &spent.Start, &spent.Spent); err != nil {
				return err
			}
			if len(hash) != 32 {
				continue
			}
			if pos, ok := ix.KeyPos((*[32]byte)(hash)); ok {
				ix.SetSpent(pos, spent)
			}
		}
		return rows.Err()
	}
	return nil
}
