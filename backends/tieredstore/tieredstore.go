// Package tieredstore combines two stampede stores into one: a small, fast local tier (L1, usually
// backends/memstore) in front of a shared one (L2, usually backends/redisstore). Reads try L1, then L2
// (one round trip at most), and copy an L2 hit into L1; writes and deletes go to both.
//
// An L1 copy lives no longer than the L1 TTL cap (default 5 s) and never past the entry's freshness, so
// L1 only ever holds fresh entries: stale serving, revalidation and fleet coalescing read L2. When L2
// announces deletions (redisstore's Invalidations, fed by Delete and PurgeTag on any replica), every
// replica drops the purged key from its L1 as the announcement arrives.
//
// The Store also passes on what L2 offers to the stampede middleware: fleet coalescing
// (stampede.WithFleetCoalescing), the tag index (Cache.PurgeTag) and CallTimeout.
package tieredstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// Tier is what each tier must offer: the three methods of stampede.Store.
type Tier interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Delete(ctx context.Context, key string) error
}

// DefaultL1TTL caps how long an entry stays in L1 when WithL1TTL is not given.
const DefaultL1TTL = 5 * time.Second

// ErrUnsupported is returned by methods L2 does not offer (PurgeTag on an L2 without a tag index).
var ErrUnsupported = errors.New("tieredstore: not supported by the L2 store")

// Option configures a Store; pass options to New.
type Option func(*Store)

// WithL1TTL caps how long an entry is kept in L1 (default 5 s, also for zero): the longest a replica
// may serve an entry that another replica overwrote in L2 without a purge. A negative d makes New panic.
func WithL1TTL(d time.Duration) Option {
	return func(s *Store) { s.l1TTL = d }
}

// Store is a two-tier store. It is safe for concurrent use.
type Store struct {
	l1, l2 Tier
	l1TTL  time.Duration
	now    func() time.Time
	stop   func() // ends the invalidation subscription; nil when L2 announces nothing
	fills  fills
	// l1Hits, l2Hits and misses count the Gets by the tier that answered them (see [Store.Stats]).
	l1Hits, l2Hits, misses atomic.Uint64
}

// Stats counts a Store's Gets by the tier that answered them, since it was built.
type Stats struct {
	// L1Hits counts the Gets answered by the first tier (memory), L2Hits those answered by the second
	// (Redis, say) after L1 missed, and Misses those neither tier answered (or that failed).
	L1Hits, L2Hits, Misses uint64
}

// Stats returns the Store's counts of Gets by the tier that answered them: which tier serves a
// replica's hits, which the middleware's counters cannot tell apart.
func (s *Store) Stats() Stats {
	return Stats{L1Hits: s.l1Hits.Load(), L2Hits: s.l2Hits.Load(), Misses: s.misses.Load()}
}

// New returns a Store with l1 in front of l2. It panics, with a message starting "stampede: ", on a nil
// tier (a typed nil included) or an invalid option. When l2
// announces deletions (a method Invalidations(func(key string)) (stop func())), the Store subscribes
// until Close.
func New(l1, l2 Tier, opts ...Option) *Store {
	if isNil(l1) || isNil(l2) {
		panic("stampede: tieredstore: New expects non-nil tiers")
	}
	s := &Store{l1: l1, l2: l2, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	switch {
	case s.l1TTL < 0:
		panic(fmt.Sprintf("stampede: tieredstore: WithL1TTL expects d >= 0, got %v", s.l1TTL))
	case s.l1TTL == 0:
		s.l1TTL = DefaultL1TTL
	}
	if inv, ok := l2.(interface{ Invalidations(func(string)) func() }); ok {
		s.stop = inv.Invalidations(func(key string) { _ = s.dropL1(context.Background(), key) })
	}
	return s
}

// Close ends the invalidation subscription. It closes neither tier.
func (s *Store) Close() {
	if s.stop != nil {
		s.stop()
	}
}

// Get returns the entry from L1, or else from L2, copying an L2 hit into L1 unless the key was deleted
// while it was read (a copy made then would outlive the deletion).
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if v, ok, err := s.l1.Get(ctx, key); err == nil && ok {
		s.l1Hits.Add(1)
		return v, true, nil
	}
	gen := s.generation(key)
	v, ok, err := s.l2.Get(ctx, key)
	if err != nil || !ok {
		s.misses.Add(1)
		return nil, false, err
	}
	s.l2Hits.Add(1)
	s.fillAt(ctx, key, v, gen)
	return v, true, nil
}

// fillShards is how many fill generations a Store keeps: a deletion only stops the concurrent L1 copies
// of keys in its shard.
const fillShards = 64

// fills orders the L1 copies that reads and writes make with deletions (see generation).
type fills [fillShards]struct {
	mu  sync.Mutex
	gen uint64 // bumped by every deletion in the shard; guarded by mu
}

var fillSeed = maphash.MakeSeed()

func (s *Store) fillShard(key string) *struct {
	mu  sync.Mutex
	gen uint64
} {
	return &s.fills[maphash.String(fillSeed, key)%fillShards]
}

// generation returns key's fill generation: a copy into L1 of what was read from L2 (or written to it)
// after it was taken is made only while no deletion of a key of its shard came in between.
func (s *Store) generation(key string) uint64 {
	sh := s.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.gen
}

// fillAt copies value, read from L2 at key's fill generation gen, into L1 when no write or deletion in
// the shard came since (a copy made then might be older than what L2 holds now).
func (s *Store) fillAt(ctx context.Context, key string, value []byte, gen uint64) {
	sh := s.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen == gen {
		s.fill(ctx, key, value)
	}
}

// wroteAt records a write of value to L2, begun at key's fill generation gen: it copies value into L1
// when nothing else in the shard changed L2 meanwhile, drops key's L1 copy otherwise (it may be older
// than what L2 holds), and stops the copies of reads in progress (they may be older than value).
func (s *Store) wroteAt(ctx context.Context, key string, value []byte, gen uint64) {
	sh := s.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen == gen {
		s.fill(ctx, key, value)
	} else {
		_ = s.l1.Delete(ctx, key)
	}
	sh.gen++
}

// dropL1 removes key from L1 and stops the copies into L1 in progress.
func (s *Store) dropL1(ctx context.Context, key string) error {
	sh := s.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	return s.l1.Delete(ctx, key)
}

// auxTier is a tier that keeps an annotation beside each value (backends/memstore does).
type auxTier interface {
	AuxOf(key string, value []byte) any
	AttachAux(key string, value []byte, aux any)
}

// AuxOf returns the annotation attached to key's value in L1 when value is that very value (see
// memstore.Store.AuxOf); nil otherwise, and when L1 keeps none.
func (s *Store) AuxOf(key string, value []byte) any {
	if a, ok := s.l1.(auxTier); ok {
		return a.AuxOf(key, value)
	}
	return nil
}

// AttachAux attaches aux to key's value in L1, when L1 keeps annotations and still holds that value.
func (s *Store) AttachAux(key string, value []byte, aux any) {
	if a, ok := s.l1.(auxTier); ok {
		a.AttachAux(key, value, aux)
	}
}

// fill copies value into L1 for the L1 cap or the entry's remaining freshness, whichever is shorter.
func (s *Store) fill(ctx context.Context, key string, value []byte) {
	if ttl := s.l1TTLFor(value); ttl > 0 {
		_ = s.l1.SetEx(ctx, key, value, ttl)
	}
}

// l1TTLFor returns how long value may stay in L1: zero for a value that is not a fresh entry.
func (s *Store) l1TTLFor(value []byte) time.Duration {
	v, err := entry.Parse(value)
	if err != nil {
		return 0
	}
	return min(s.l1TTL, v.FreshUntil().Sub(s.now()))
}

// SetEx stores value in L2 and then L1. An L2 error is returned (and L1 is left alone, so no replica
// serves from L1 what the shared tier does not hold).
func (s *Store) SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	gen := s.generation(key)
	if err := s.l2.SetEx(ctx, key, value, ttl); err != nil {
		_ = s.dropL1(ctx, key) // the write may have landed
		return err
	}
	s.wroteAt(ctx, key, value, gen)
	return nil
}

// Delete removes key from both tiers: from L1 before and after L2, so that neither a copy made from L2
// just before the deletion reached it nor one made while it did outlives it.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := errors.Join(s.dropL1(ctx, key), s.l2.Delete(ctx, key))
	return errors.Join(err, s.dropL1(ctx, key))
}

// CallTimeout returns the longer bound of the two tiers (a tier that reports none counts as zero).
func (s *Store) CallTimeout() time.Duration {
	var d time.Duration
	for _, t := range [...]Tier{s.l1, s.l2} {
		if b, ok := t.(interface{ CallTimeout() time.Duration }); ok {
			d = max(d, b.CallTimeout())
		}
	}
	return d
}

// isNil reports whether t is nil or holds a nil pointer (a typed nil), which would panic on first use.
func isNil(t Tier) bool {
	if t == nil {
		return true
	}
	v := reflect.ValueOf(t)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
