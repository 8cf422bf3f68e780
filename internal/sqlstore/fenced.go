package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fencing (FencedStore, TagStore): why each step is where it is.
//
// A ticket is a row (k, id, exp) of the tickets table, and its string "t<clock>.<id>" carries the tag
// clock read before the row was inserted. A lease token "l<clock>.<id>" is a ticket while the lease
// row (k, token=id) lives. SetFenced is one transaction:
//
//  1. for each tag (sorted): make sure the tag's row exists, then read the rows of all its tags with a
//     share lock and refuse if one was purged after the ticket's clock (purged > clock);
//  2. record writeKey under each tag (the members table);
//  3. read the ticket's (or lease's) row with a share lock; refuse if it is gone or expired;
//  4. write the entry.
//
// Invalidate (one transaction) deletes the tickets and the lease of key, then the entry. PurgeTag is two:
// the first advances the tag clock and sets the tag's purge mark (purge = the new clock, kept until
// every ticket and lease live at that moment has expired); the second reads the tag's members, deletes
// those members and then, for their keys, the tickets, the leases and the entries.
//
// The interleavings, with the database's row locks (a share lock waits for an exclusive one and the
// other way round; under READ COMMITTED a locking read, an UPDATE or a DELETE sees the latest committed
// row):
//
//   - Invalidate deletes the ticket before SetFenced's step 3: the ticket is gone, nothing is written.
//   - SetFenced's step 3 locks the ticket first: Invalidate's DELETE of the ticket waits until SetFenced
//     committed, and its DELETE of the entry, a later statement, deletes what SetFenced wrote. Were the
//     entry deleted first, the write could land after it: hence tickets before entries.
//   - A purge mark committed before SetFenced's step 1: SetFenced reads it and refuses a ticket taken
//     before the purge (its clock is below the mark), whether or not the key was a member.
//   - SetFenced's step 1 locks the tag's row first: the purge's first transaction (its upsert of the
//     row) waits until SetFenced committed, so the member SetFenced recorded is committed before the
//     second transaction reads the members, and the entry is deleted. Were the members recorded
//     without the lock, the purge could read the members before SetFenced's commit and miss the key:
//     hence the lock, and the purge mark recorded before the members are read.
//   - A ticket taken after the purge's first transaction committed read a clock at or above the mark:
//     its writes go through, as the contract says of tickets taken after a purge.
//   - A row of a tag that did not exist (or that the sweeper removed, which it does only when the mark
//     has expired and no member is left) is inserted by SetFenced within its transaction; a purge that
//     upserts the same row waits for that insert to commit, so the same holds.
//
// Locks are taken in one order everywhere (tags, members, tickets and leases, entries), so these
// transactions do not deadlock each other except two purges of tags that share keys, which the
// database detects: the victim is run once more ([Dialect.Retryable]).

// ticket kinds, the first byte of a ticket string.
const (
	ticketKind = 't'
	leaseKind  = 'l'
)

// errRefused rolls a fenced write's transaction back without an error for the caller.
var errRefused = errors.New("refused")

func formatTicket(kind byte, clock, id int64) string {
	return string(kind) + strconv.FormatInt(clock, 10) + "." + strconv.FormatInt(id, 10)
}

// parseTicket splits a ticket string; ok is false for anything a Store did not return.
func parseTicket(t string) (kind byte, clock, id int64, ok bool) {
	if len(t) < 4 || (t[0] != ticketKind && t[0] != leaseKind) {
		return 0, 0, 0, false
	}
	c, i, found := strings.Cut(t[1:], ".")
	if !found {
		return 0, 0, 0, false
	}
	clock, err1 := strconv.ParseInt(c, 10, 64)
	id, err2 := strconv.ParseInt(i, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, 0, false
	}
	return t[0], clock, id, true
}

// readClock returns the tag clock.
func (s *Store) readClock(ctx context.Context, q Querier) (int64, error) {
	var c int64
	found, err := queryRow(ctx, q, s.q.clock, nil, &c)
	if err == nil && !found {
		err = fmt.Errorf("the clock table has no row: run Migrate")
	}
	return c, err
}

// Ticket registers a writer of key and returns its ticket, valid for ttl unless Invalidate (or a
// PurgeTag of one of the tags of its write) revokes it first.
func (s *Store) Ticket(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("%s: ticket: ttl %v is not above zero", s.name, ttl)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// The clock is read before the ticket exists: a purge between the two makes the ticket look older
	// than it is, which can only refuse a write, never let one through.
	clock, err := s.readClock(ctx, s.db)
	if err != nil {
		return "", s.opError(ctx, "ticket", err)
	}
	id := rand.Int64()
	if _, err := s.db.Exec(ctx, s.q.ticket, keyBytes(key), id, expiry(s.now(), ttl)); err != nil {
		return "", s.opError(ctx, "ticket", err)
	}
	return formatTicket(ticketKind, clock, id), nil
}

// SetFenced records writeKey under each of tags, then stores value under writeKey for ttl unless
// ticket is no longer valid for key or one of tags was purged after the ticket was taken; stored
// reports whether it wrote. A ticket string no Store returned is ErrInvalidTicket.
func (s *Store) SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (bool, error) {
	kind, clock, id, ok := parseTicket(ticket)
	switch {
	case !ok:
		return false, fmt.Errorf("%s: setfenced: %w", s.name, ErrInvalidTicket)
	case ttl <= 0:
		return false, fmt.Errorf("%s: setfenced: ttl %v is not above zero", s.name, ttl)
	case len(value) > s.cfg.MaxValueBytes:
		return false, nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	kb, wk := keyBytes(key), keyBytes(writeKey)
	tagKeys := sortedKeys(tags)
	now := s.now()
	exp := expiry(now, ttl)
	err := s.tx(ctx, func(q Querier) error {
		if len(tagKeys) > 0 {
			purged, err := s.lockTags(ctx, q, tagKeys)
			if err != nil {
				return err
			}
			if purged > clock {
				return errRefused
			}
			if err := s.addMembers(ctx, q, tagKeys, wk, exp); err != nil {
				return err
			}
			if writeKey != key { // a purge of the tag must revoke the ticket, which is key's
				if err := s.addMembers(ctx, q, tagKeys, kb, exp); err != nil {
					return err
				}
			}
		}
		check, args := s.q.checkTicket, []any{kb, id, now}
		if kind == leaseKind {
			check = s.q.checkLease
		}
		var one int
		found, err := queryRow(ctx, q, check, args, &one)
		if err != nil {
			return err
		}
		if !found {
			return errRefused
		}
		_, err = q.Exec(ctx, s.q.setEntry, wk, nonNil(value), exp, int64(len(wk)+len(value)+RowOverhead))
		return err
	})
	switch {
	case errors.Is(err, errRefused):
		return false, nil
	case err != nil:
		return false, s.opError(ctx, "setfenced", err)
	}
	s.wrote(1 + len(tagKeys))
	return true, nil
}

// SetExFenced is SetFenced(ctx, key, token, key, value, ttl, nil): the lease-fenced write the engine
// calls until it takes tickets.
func (s *Store) SetExFenced(ctx context.Context, key string, value []byte, ttl time.Duration, token string) (bool, error) {
	return s.SetFenced(ctx, key, token, key, value, ttl, nil)
}

// sortedKeys returns the stored forms of tags, sorted and without duplicates, so that every
// transaction locks tag rows in the same order.
func sortedKeys(tags []string) [][]byte {
	if len(tags) == 0 {
		return nil
	}
	out := make([][]byte, 0, len(tags))
	for _, t := range tags {
		out = append(out, keyBytes(t))
	}
	slices.SortFunc(out, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	return slices.CompactFunc(out, func(a, b []byte) bool { return string(a) == string(b) })
}

// lockTags makes sure each tag has its row, takes a share lock on the rows and returns the latest
// purge mark among them.
func (s *Store) lockTags(ctx context.Context, q Querier, tags [][]byte) (int64, error) {
	for attempt := 0; ; attempt++ {
		args := make([]any, 0, 3*len(tags))
		for _, t := range tags {
			args = append(args, t, 0, 0)
		}
		if _, err := q.Exec(ctx, s.sql(s.d.InsertIgnore("{p}tags", []string{"tag", "purged", "exp"}, []string{"tag"}, len(tags))), args...); err != nil {
			return 0, err
		}
		cond, args := s.in("tag", tags, nil)
		rows, err := q.Query(ctx, s.sql("SELECT purged FROM {p}tags WHERE "+cond+s.d.ShareLock), args...)
		if err != nil {
			return 0, err
		}
		var latest int64
		n := 0
		for rows.Next() {
			var p int64
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return 0, err
			}
			latest = max(latest, p)
			n++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, err
		}
		if n == len(tags) {
			return latest, nil
		}
		if attempt == 2 {
			// The sweeper keeps removing the rows between the insert and the lock: it only removes a
			// row whose purge mark has expired, so none was purged recently.
			return latest, nil
		}
	}
}

// addMembers records key under each tag until exp (or later, when already recorded for longer).
func (s *Store) addMembers(ctx context.Context, q Querier, tags [][]byte, key []byte, exp int64) error {
	args := make([]any, 0, 3*len(tags))
	for _, t := range tags {
		args = append(args, t, key, exp)
	}
	_, err := q.Exec(ctx, s.sql(s.d.Upsert("{p}members", []string{"tag", "k", "exp"}, []string{"tag", "k"}, nil, []string{"exp"}, len(tags))), args...)
	return err
}

// TagKeys records that the entry at key carries tags, for at least ttl.
func (s *Store) TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error {
	tagKeys := sortedKeys(tags)
	if len(tagKeys) == 0 {
		return nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	exp := expiry(s.now(), ttl)
	err := s.tx(ctx, func(q Querier) error {
		args := make([]any, 0, 3*len(tagKeys))
		for _, t := range tagKeys {
			args = append(args, t, 0, 0)
		}
		if _, err := q.Exec(ctx, s.sql(s.d.InsertIgnore("{p}tags", []string{"tag", "purged", "exp"}, []string{"tag"}, len(tagKeys))), args...); err != nil {
			return err
		}
		return s.addMembers(ctx, q, tagKeys, keyBytes(key), exp)
	})
	if err != nil {
		return s.opError(ctx, "tagkeys", err)
	}
	s.wrote(len(tagKeys))
	return nil
}

// PurgeTag advances the tag clock and marks tag purged (so that no ticket taken before it can write
// under tag), then deletes every entry recorded under tag, revoking the tickets and leases of those
// keys, announces each key and the tag, and forgets the members it read. It returns how many entries
// it deleted.
func (s *Store) PurgeTag(ctx context.Context, tag string) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tk := keyBytes(tag)
	err := s.tx(ctx, func(q Querier) error {
		if _, err := q.Exec(ctx, s.q.bumpClock); err != nil {
			return err
		}
		clock, err := s.readClock(ctx, q)
		if err != nil {
			return err
		}
		// The mark must outlive every ticket and lease that could have been taken before it.
		keep := s.now()
		for _, m := range []string{s.q.maxTicket, s.q.maxLease} {
			var e int64
			if _, err := queryRow(ctx, q, m, nil, &e); err != nil {
				return err
			}
			keep = max(keep, e)
		}
		_, err = q.Exec(ctx, s.sql(s.d.Upsert("{p}tags", []string{"tag", "purged", "exp"}, []string{"tag"}, []string{"purged"}, []string{"exp"}, 1)),
			tk, clock, keep+1)
		return err
	})
	if err != nil {
		return 0, s.opError(ctx, "purgetag", err)
	}
	var msgs []Message
	deleted := 0
	err = s.tx(ctx, func(q Querier) error {
		msgs, deleted = msgs[:0], 0
		var keys [][]byte
		rows, err := q.Query(ctx, s.q.tagMembers, tk)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k []byte
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		for len(keys) > 0 {
			chunk := keys[:min(len(keys), s.q.chunk)]
			keys = keys[len(chunk):]
			// Members before tickets, as SetFenced locks them (see the comment at the top).
			cond, args := s.in("k", chunk, []any{tk})
			if _, err := q.Exec(ctx, s.sql("DELETE FROM {p}members WHERE tag = ? AND "+cond), args...); err != nil {
				return err
			}
			n, m, err := s.invalidateMany(ctx, q, chunk)
			if err != nil {
				return err
			}
			deleted += n
			msgs = append(msgs, m...)
		}
		msgs = append(msgs, Message{Kind: KindTag, Key: tag})
		return s.announce(ctx, q, msgs)
	})
	if err != nil {
		return 0, s.opError(ctx, "purgetag", err)
	}
	s.delivered(msgs)
	return deleted, nil
}

// invalidateMany revokes the tickets and leases of keys and deletes their entries, in Invalidate's
// order, returning how many entries it deleted and the announcements to make.
func (s *Store) invalidateMany(ctx context.Context, q Querier, keys [][]byte) (int, []Message, error) {
	cond, args := s.in("k", keys, nil)
	if _, err := q.Exec(ctx, s.sql("DELETE FROM {p}tickets WHERE "+cond), args...); err != nil {
		return 0, nil, err
	}
	var msgs []Message
	rows, err := q.Query(ctx, s.sql("SELECT k FROM {p}leases WHERE "+cond+s.d.ShareLock), args...)
	if err != nil {
		return 0, nil, err
	}
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, nil, err
		}
		if len(k) == 0 || k[0] != 0 { // a digest cannot be announced: its waiters wake at expiry
			msgs = append(msgs, Message{Kind: KindRelease, Key: string(k), Outcome: "miss"})
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, nil, err
	}
	if _, err := q.Exec(ctx, s.sql("DELETE FROM {p}leases WHERE "+cond), args...); err != nil {
		return 0, nil, err
	}
	n, err := q.Exec(ctx, s.sql("DELETE FROM {p}entries WHERE "+cond), args...)
	if err != nil {
		return 0, nil, err
	}
	for _, k := range keys {
		if len(k) == 0 || k[0] != 0 {
			msgs = append(msgs, Message{Kind: KindKey, Key: string(k)})
		}
	}
	return int(n), msgs, nil
}
