package redisstore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fenced writes (stampede.FencedStore): a value computed before an invalidation, on any replica, never
// lands after it.
//
// Keys, beside the value at key (all three share key's Redis Cluster hash tag, so one script may touch
// them):
//   - key+":tk", a sorted set of the live tickets of key: member the ticket's random part, score its
//     expiry in milliseconds of the server's clock;
//   - key+":lock", the fleet lease (fleet.go), whose token is a ticket too;
//   - per tag, <prefix>stampede-tagmark:<tag>, the server time (µs) of the tag's last purge, kept for
//     maxTicketTTL.
//
// A ticket reads "t<µs>.<hex>" and a lease token "l<µs>.<hex>": the server time it was taken at, then its
// random part. SetFenced writes only if the ticket is still in the set (or the lease still holds the
// token), checked and written in one script; Invalidate deletes the value, the set and the lease in one
// script. Tags are on other slots than the key, so they are fenced without one atomic step:
//
//	SetFenced:  (1) add writeKey to each tag's set   (2) read the tags' purge marks   (3) the fenced write
//	PurgeTag:   (a) set the tag's purge mark          (b) read the tag's set            (c) Invalidate each member, then remove it
//
// If (b) follows (1), the purge knows writeKey and key (both are recorded) and (c) revokes the ticket (or deletes what (3) wrote). If
// (b) precedes (1), then (a) precedes (2), which sees a mark newer than the ticket and refuses. A write
// whose ticket was taken after the mark is not refused: it computed its value after the purge began.
// The comparison of a ticket's time with a mark's assumes the clocks of the nodes holding them agree
// (one node, or a Sentinel group, has one clock at a time; Cluster nodes need NTP-synchronised clocks).

// maxTicketTTL caps a ticket's life, and is how long a tag's purge mark is kept: a ticket can never
// outlive the mark of a purge that should refuse it.
const maxTicketTTL = time.Hour

// ErrInvalidTicket is returned by SetFenced for a ticket that no Ticket or TryLease returned.
var ErrInvalidTicket = errors.New("redisstore: invalid ticket")

// ErrNotReplicated is returned by Invalidate and PurgeTag when Redis deleted the entries but no replica
// acknowledged the deletion within the store's timeout (see WithReplicaAcks): a failover at that moment
// could bring the entries back, so the caller must not count on the invalidation.
var ErrNotReplicated = errors.New("redisstore: invalidation not acknowledged by a replica")

const (
	ticketSuffix = ":tk"
	tagMarkInfix = "stampede-tagmark:"
)

var (
	// ticket: KEYS[1] ticket set; ARGV[1] member, ARGV[2] ttl ms. Returns the server time in µs.
	// Times are built as strings: Lua formats a number above 10^14 in exponent notation.
	ticketScript = redis.NewScript(`local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return t[1] .. string.format('%06d', tonumber(t[2]))`)

	// lease: KEYS[1] lock; ARGV[1] random part, ARGV[2] lease ms. Returns the token, or false when held.
	leaseScript = redis.NewScript(`local t = redis.call('TIME')
local token = 'l' .. t[1] .. string.format('%06d', tonumber(t[2])) .. '.' .. ARGV[1]
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then return token end
return false`)

	// setFencedScript: KEYS[1] write key, KEYS[2] ticket set, KEYS[3] lock; ARGV[1] kind ("t" or "l"),
	// ARGV[2] member (a ticket's random part) or token (a lease's), ARGV[3] value, ARGV[4] ttl ms.
	setFencedScript = redis.NewScript(`if ARGV[1] == 't' then
  local exp = redis.call('ZSCORE', KEYS[2], ARGV[2])
  if not exp then return 0 end
  local t = redis.call('TIME')
  if tonumber(exp) <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then return 0 end
elseif redis.call('GET', KEYS[3]) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1`)

	// invalidateScript: KEYS[1] value, KEYS[2] ticket set, KEYS[3] lock; ARGV[1] invalidation channel,
	// ARGV[2] fleet channel, ARGV[3] the key as announced. A revoked lease's waiters hear "miss".
	// Returns 1 when a value was deleted.
	invalidateScript = redis.NewScript(`local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if redis.call('DEL', KEYS[3]) == 1 then redis.call('PUBLISH', ARGV[2], 'miss ' .. ARGV[3]) end
redis.call('PUBLISH', ARGV[1], ARGV[3])
return n`)

	// markScript: KEYS[1] purge mark; ARGV[1] ttl ms. Sets the mark to the server time in µs.
	markScript = redis.NewScript(`local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
redis.call('SET', KEYS[1], now, 'PX', ARGV[1])
return now`)
)

// newRandom returns 16 random bytes in hexadecimal.
func newRandom() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseTicket splits a ticket or lease token into its kind ('t' or 'l'), time (µs) and random part.
func parseTicket(s string) (kind byte, at int64, random string, ok bool) {
	if len(s) < 3 || (s[0] != 't' && s[0] != 'l') {
		return 0, 0, "", false
	}
	ts, random, ok := strings.Cut(s[1:], ".")
	if !ok || random == "" {
		return 0, 0, "", false
	}
	at, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || at < 0 {
		return 0, 0, "", false
	}
	return s[0], at, random, true
}

// Ticket registers a writer of key and returns its ticket, valid for ttl (at most an hour) unless
// Invalidate, or a PurgeTag of a tag its write carries, revokes it first.
func (s *Store) Ticket(ctx context.Context, key string, ttl time.Duration) (string, error) {
	ms := min(max(ttl, time.Millisecond), maxTicketTTL).Milliseconds()
	random := newRandom()
	ctx, cancel := s.bound(ctx)
	defer cancel()
	at, err := run(s, ctx, func(ctx context.Context) (int64, error) {
		return ticketScript.Run(ctx, s.client, []string{s.key(key) + ticketSuffix}, random, ms).Int64() // the reply is a string; Int64 parses it
	})
	if err != nil {
		return "", opError(ctx, "ticket", err)
	}
	return "t" + strconv.FormatInt(at, 10) + "." + random, nil
}

// SetFenced records writeKey under each of tags (for ttl), then stores value under writeKey for ttl
// unless ticket is no longer valid for key (revoked by Invalidate, expired, or a lease token whose
// lease is gone) or one of tags was purged after the ticket was taken. stored reports whether it wrote.
// writeKey must share key's hash tag (the first {...}) in a Redis Cluster.
func (s *Store) SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("redisstore: setfenced: ttl %v is not above zero", ttl)
	}
	if ticket == "" {
		return false, nil // no ticket (a lease not held): nothing may be written
	}
	kind, at, random, ok := parseTicket(ticket)
	if !ok {
		return false, fmt.Errorf("redisstore: setfenced: %w", ErrInvalidTicket)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ms := max(ttl.Milliseconds(), 1)
	if len(tags) > 0 {
		members := []string{writeKey}
		if writeKey != key {
			members = append(members, key) // so that a purge of the tag revokes the ticket, which is key's
		}
		purged, err := s.tagWrite(ctx, members, tags, ms, at)
		if err != nil {
			return false, opError(ctx, "setfenced", err)
		}
		if purged {
			return false, nil
		}
	}
	arg := random
	if kind == 'l' {
		arg = ticket // the lock holds the whole token
	}
	k := s.key(key)
	n, err := run(s, ctx, func(ctx context.Context) (int64, error) {
		return setFencedScript.Run(ctx, s.client, []string{s.key(writeKey), k + ticketSuffix, k + lockSuffix},
			string(kind), arg, s.encode(value), ms).Int64()
	})
	if err != nil {
		return false, opError(ctx, "setfenced", err)
	}
	return n == 1, nil
}

// tagWrite is steps (1) and (2) of SetFenced (see the top of this file): it records members (the write
// key, and the key its ticket is for when that is another) under each tag, then reports whether one of
// the tags was purged at or after at (µs).
func (s *Store) tagWrite(ctx context.Context, members []string, tags []string, ms, at int64) (purged bool, err error) {
	_, err = run(s, ctx, func(ctx context.Context) ([]redis.Cmder, error) {
		return s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, tag := range tags {
				for _, m := range members {
					addTag.Eval(ctx, p, []string{s.tagKey(tag)}, m, ms) // Eval: a pipeline cannot fall back from EVALSHA
				}
			}
			return nil
		})
	})
	if err != nil {
		return false, err
	}
	marks, err := run(s, ctx, func(ctx context.Context) ([]redis.Cmder, error) {
		return s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, tag := range tags {
				p.Get(ctx, s.tagMarkKey(tag))
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, err
	}
	for _, c := range marks {
		v, err := c.(*redis.StringCmd).Int64()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return false, err
		case v >= at:
			return true, nil
		}
	}
	return false, nil
}

func (s *Store) tagMarkKey(tag string) string { return s.cfg.prefix + tagMarkInfix + tag }

// Invalidate deletes key, revokes every ticket and the lease of key (the lease's waiters hear
// OutcomeMiss), and announces the deletion on the invalidation channel (see Invalidations). With
// replicas it returns nil only once one acknowledged the deletion (see WithReplicaAcks); otherwise
// ErrNotReplicated.
func (s *Store) Invalidate(ctx context.Context, key string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.durably(ctx, func(p redis.Pipeliner) {
		s.queueInvalidate(ctx, p, key)
	})
	if err != nil {
		return opError(ctx, "invalidate", err)
	}
	return nil
}

// queueInvalidate queues the invalidation of key on p (Eval: a pipeline cannot fall back from
// EVALSHA); its reply is 1 when a value was deleted.
func (s *Store) queueInvalidate(ctx context.Context, p redis.Pipeliner, key string) *redis.Cmd {
	k := s.key(key)
	return invalidateScript.Eval(ctx, p, []string{k, k + ticketSuffix, k + lockSuffix},
		s.channel(invalidateChannel), s.channel(fleetChannel), key)
}

// PurgeTag deletes every entry recorded under tag as Invalidate does (revoking their tickets and
// leases), refuses from then on the writes carrying tag whose ticket was taken before, announces the
// tag on the tag channel (see TagInvalidations) and forgets the tag. It returns how many entries it
// deleted (a key recorded under the tag whose entry expired or was deleted already is not counted).
func (s *Store) PurgeTag(ctx context.Context, tag string) (int, error) {
	keys, err := s.PurgeTagKeys(ctx, tag)
	return len(keys), err
}

// PurgeTagKeys is PurgeTag returning the keys whose entries it deleted, for a two-tier store that must
// drop its own copies of them before it returns (backends/tieredstore).
func (s *Store) PurgeTagKeys(ctx context.Context, tag string) ([]string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// The members are read after the mark, invalidated, and only then removed: a concurrent purge of
	// the same tag reads them too and returns only once they are gone; a member added meanwhile stays
	// (its write is refused by the mark, or came after it).
	keys, err := run(s, ctx, func(ctx context.Context) ([]string, error) {
		if err := markScript.Run(ctx, s.client, []string{s.tagMarkKey(tag)}, maxTicketTTL.Milliseconds()).Err(); err != nil {
			return nil, err
		}
		return s.client.SMembers(ctx, s.tagKey(tag)).Result()
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, opError(ctx, "purgetag", err)
	}
	var dels []*redis.Cmd
	_, err = s.durably(ctx, func(p redis.Pipeliner) {
		dels = dels[:0]
		for _, key := range keys {
			dels = append(dels, s.queueInvalidate(ctx, p, key))
		}
		if len(keys) > 0 {
			members := make([]any, len(keys))
			for i, k := range keys {
				members[i] = k
			}
			p.SRem(ctx, s.tagKey(tag), members...)
		}
		p.Publish(ctx, s.channel(tagChannel), tag)
	})
	var deleted []string
	for i, c := range dels {
		if n, _ := c.Int64(); n == 1 {
			deleted = append(deleted, keys[i])
		}
	}
	if err != nil {
		return deleted, opError(ctx, "purgetag", err)
	}
	return deleted, nil
}

// durably sends what queue queues in one pipeline, which deletes or revokes, followed, when the
// deletions must reach a replica (see WithReplicaAcks), by a WAIT on the same connection.
func (s *Store) durably(ctx context.Context, queue func(p redis.Pipeliner)) ([]redis.Cmder, error) {
	want := s.acksWanted(ctx)
	var wait *redis.Cmd
	cmds, err := run(s, ctx, func(ctx context.Context) ([]redis.Cmder, error) {
		return s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			queue(p)
			if want > 0 {
				d := time.Until(deadlineOf(ctx, s.cfg.timeout)) * 9 / 10
				wait = p.Do(ctx, "wait", want, max(d, time.Millisecond).Milliseconds())
			}
			return nil
		})
	})
	if err != nil {
		return cmds, err
	}
	if wait != nil {
		if n, err := wait.Int64(); err != nil || n < int64(want) {
			return cmds, fmt.Errorf("%w (%d of %d)", ErrNotReplicated, n, want)
		}
	}
	return cmds, nil
}

// acksWanted returns how many replicas an invalidation waits for (see WithReplicaAcks). Without the
// option: one once this Store has seen its master with a replica, for good (a master that lost its
// replica, as an old master does during a failover, must not take a deletion alone), none before,
// asking INFO at most once a second. A Cluster client waits for none.
func (s *Store) acksWanted(ctx context.Context) int {
	cl, ok := s.client.(*redis.Client)
	switch {
	case !ok || s.cfg.replicaAcks < 0:
		return 0
	case s.cfg.replicaAcks > 0:
		return s.cfg.replicaAcks
	case s.replicas.saw.Load():
		return 1
	}
	now := time.Now().UnixNano()
	if last := s.replicas.askedAt.Load(); now-last < int64(time.Second) || !s.replicas.askedAt.CompareAndSwap(last, now) {
		return 0
	}
	info, err := run(s, ctx, func(ctx context.Context) (string, error) { return cl.Info(ctx, "replication").Result() })
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				s.replicas.saw.Store(true)
				return 1
			}
		}
	}
	return 0
}

// deadlineOf returns ctx's deadline, or d from now when it has none.
func deadlineOf(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// TagInvalidations calls fn with every tag purged through any Store with this key prefix, on any
// replica, until the returned stop function is called. fn runs on the subscription's goroutine and must
// not block.
func (s *Store) TagInvalidations(fn func(tag string)) (stop func()) {
	l := s.listen()
	l.mu.Lock()
	id := l.nextID
	l.nextID++
	l.tagInvalidate[id] = fn
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.tagInvalidate, id)
		l.mu.Unlock()
	}
}

// replicaState is what a Store learnt of its master's replicas (see learnReplicas).
type replicaState struct {
	saw     atomic.Bool  // a replica was seen once: every invalidation waits for one
	askedAt atomic.Int64 // when INFO was last asked (Unix ns)
}
