// Package memstore is an in-process store for stampede, bounded by bytes rather than by entry count.
//
// # Byte budget
//
// Every entry is charged len(key) + len(value) + [Overhead] bytes, and the store keeps the sum of the
// charges of its entries within the maxBytes given to [New]. A response of 8 MiB therefore weighs as
// much as thousands of small ones, which is what bounds the memory of an HTTP cache
// (docs/behaviour.md §7.3). A value whose charge alone exceeds the budget is not stored at all.
//
// Eviction is amortised: otter applies a write to the table at once and reports it to the eviction
// policy through a buffer that a background task drains. Until the drain, the entries held may exceed
// the budget. otter alone bounds that excess only by the buffer's capacity, 128 writes per CPU (a
// 1 MiB store flooded with 64 KiB values on 2 CPUs held 16 MiB), so [Store.SetEx] also counts the
// bytes it wrote since it last forced a drain, and forces one once they reach a sixteenth of the
// budget. The bytes held thus stay below 17/16 of the budget plus one entry per concurrent SetEx,
// and within the budget itself once pending writes are drained (with [Store.CleanUp], or shortly
// after a write by themselves).
//
// # TTL
//
// Each entry expires after the ttl of the [Store.SetEx] that wrote it; an overwrite starts a new
// lifetime and a read does not extend it. An expired entry is never returned, even before the
// background clean-up has removed it. A ttl of zero or less stores nothing.
//
// # Eviction policy
//
// The store is built on otter v2, whose W-TinyLFU policy admits a new entry only when it is likely to
// be read more often than the entry it would displace, so a scan of one-off URLs does not flush the
// hot set. The policy picks victims by recency and frequency; weights only decide when to evict.
//
// Values are shared, not copied: [Store.SetEx] keeps the caller's slice and [Store.Get] returns it,
// so a hit costs no allocation. Neither the writer nor any reader may modify a slice once it has been
// handed to the store.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// Overhead is the number of bytes charged to every entry on top of len(key) + len(value), so that
// the budget also covers what the store spends to hold an entry, and many tiny entries cannot use
// far more memory than the budget says.
//
// It estimates what otter v2.4.0 spends per entry on 64-bit platforms:
//   - the node, allocated in one piece: a 56-byte header (4 list pointers, deadline, weights, state),
//     the key's string header (16) and the value, a slice header and a ttl (32): 104 bytes in the
//     112-byte size class. After the first overwrite it is an 80-byte node and a 32-byte box, the
//     same 112;
//   - the hash table: 64-byte buckets of 5 slots, between about a third and three quarters full
//     depending on where it is in its growth, so 17 to 40 bytes per entry;
//   - the frequency sketch, one uint64 per entry rounded up to a power of two, 8 to 16 bytes.
//
// That is 137 to 168 bytes; TestOverheadEstimate measures 146 to 155 on the heap. Not charged by
// len(key) + len(value) is the rounding of their backing arrays up to a size class, up to 12.5%
// (16 bytes for a 129-byte value) of small ones and nothing for large ones; 192 leaves room for it.
// An overestimate only makes the store hold a little less than it could.
const Overhead = 192

// ErrInvalidSize is returned by [New] for a budget that is not above zero.
var ErrInvalidSize = errors.New("memstore: invalid size")

// slackDivisor sets the bytes SetEx writes between forced drains to a sixteenth of the budget: with
// realistic entries far smaller than the budget, a forced drain (which takes the eviction policy's
// lock) is rare, and the excess over the budget stays small.
const slackDivisor = 16

// maxWeight is the largest charge otter can record for one entry: its weigher returns a uint32.
const maxWeight = math.MaxUint32

// Clock is a time source for expiration, for tests that control time. Its method set is otter's
// Clock, so an otter.NewCoarseClock can also be passed to [WithClock] to make reads cheaper at the cost
// of precision.
type Clock interface {
	// NowNano returns the nanoseconds elapsed since a fixed point in time, the Unix epoch for the
	// default clock.
	NowNano() int64
	// Tick returns a channel of ticks at the given interval, which drive the periodic removal of
	// expired entries. A nil channel means no periodic removal; expired entries are still never
	// returned, and writes remove them as they go.
	Tick(d time.Duration) <-chan time.Time
}

// Option configures a [Store].
type Option func(*config)

type config struct {
	clock Clock
}

// WithClock sets the time source used for expiration; the default is the system clock. It is meant
// for tests; testing/synctest works with the default clock too.
func WithClock(c Clock) Option {
	return func(cfg *config) { cfg.clock = c }
}

// item is what the cache holds for a key. It is stored by value: the node keeps it inline, so a read
// copies 32 bytes and allocates nothing.
type item struct {
	value []byte
	ttl   time.Duration // the lifetime given to the SetEx that wrote value; above zero
	aux   *auxCell      // the caller's annotation of value (see [Store.AttachAux])
}

// auxCell holds an item's annotation; it is set once, after the item was written.
type auxCell struct{ p atomic.Pointer[auxBox] }

type auxBox struct{ v any }

// Store is an in-memory store with a byte budget and a ttl per entry. It is safe for concurrent use,
// and its methods never block on I/O, so they ignore their context.
//
// Create a Store with [New] and stop its background goroutine with [Store.Close].
type Store struct {
	cache    *otter.Cache[string, item]
	maxBytes int64
	// maxEntry is the largest charge stored: maxBytes, capped by what a weigher can return.
	maxEntry int64

	// slack is how many bytes SetEx may write before it makes the eviction policy catch up.
	slack int64
	// unchecked counts the bytes written since SetEx last forced a drain; it is at least what the
	// eviction policy has not seen yet, since the background drains do not lower it.
	unchecked atomic.Int64

	evictions   atomic.Uint64 // entries removed to keep within the budget
	expirations atomic.Uint64 // entries removed because their ttl passed
	rejected    atomic.Uint64 // SetEx calls whose entry alone exceeded the budget
}

// New returns a Store that keeps at most maxBytes bytes of entries, each charged
// len(key) + len(value) + [Overhead]. It returns an error wrapping [ErrInvalidSize] if maxBytes is not
// above zero.
func New(maxBytes int64, opts ...Option) (*Store, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("%w: maxBytes %d, must be above 0", ErrInvalidSize, maxBytes)
	}
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}

	s := &Store{
		maxBytes: maxBytes,
		maxEntry: min(maxBytes, maxWeight),
		slack:    max(maxBytes/slackDivisor, 1),
	}
	o := &otter.Options[string, item]{
		MaximumWeight: uint64(maxBytes),
		Weigher:       func(key string, it item) uint32 { return uint32(weight(key, it.value)) },
		// Writing, not accessing: a read must not extend a lifetime the handler chose, and with a
		// calculator that ignores reads otter's read path does no expiry bookkeeping at all.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, item]) time.Duration {
			return e.Value.ttl
		}),
		// The atomic listener runs inline, under the bucket lock, so counting costs an atomic add
		// rather than a task on the executor, and the counts are current once CleanUp returns.
		OnAtomicDeletion: func(e otter.DeletionEvent[string, item]) {
			switch e.Cause {
			case otter.CauseOverflow:
				s.evictions.Add(1)
			case otter.CauseExpiration:
				s.expirations.Add(1)
			}
		},
	}
	if cfg.clock != nil {
		o.Clock = cfg.clock
	}
	c, err := otter.New(o)
	if err != nil {
		// The options above are valid for every maxBytes that reaches here.
		return nil, fmt.Errorf("memstore: %w", err)
	}
	s.cache = c
	return s, nil
}

// weight is the charge of an entry, saturated at what otter can record. SetEx never stores an entry
// that saturates, so the cap only keeps the conversion to uint32 from wrapping.
func weight(key string, value []byte) int64 {
	return min(int64(len(key))+int64(len(value))+Overhead, maxWeight)
}

// Get returns the value stored under key and whether it was found. An expired entry is not found.
//
// The returned slice is the one given to [Store.SetEx], not a copy, and is shared by every reader:
// callers must not modify it. A hit allocates nothing. The error is always nil.
func (s *Store) Get(_ context.Context, key string) ([]byte, bool, error) {
	it, ok := s.cache.GetIfPresent(key)
	if !ok {
		return nil, false, nil
	}
	return it.value, true, nil
}

// Holds reports whether an unexpired value is stored under key, without counting as a use: the
// eviction policy and the statistics do not see it (stampede's HoldingStore).
func (s *Store) Holds(key string) bool {
	_, ok := s.cache.GetEntryQuietly(key)
	return ok
}

// SetEx stores value under key for ttl, replacing any earlier value and its lifetime. The store keeps
// value itself, so the caller must not modify it afterwards.
//
// SetEx stores nothing, and removes any earlier value of key, when ttl is not above zero or when the
// entry's charge, len(key) + len(value) + [Overhead], exceeds the budget (or 4 GiB). It still
// returns nil then: a response too large to cache is not a failure of the store, and a caller that
// counts store errors (stampede's circuit breaker) must not back off because of it. Such writes are
// counted in [Stats].Rejected. The error is always nil.
func (s *Store) SetEx(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		s.cache.Invalidate(key)
		return nil
	}
	w := int64(len(key)) + int64(len(value)) + Overhead
	if w > s.maxEntry {
		s.rejected.Add(1)
		s.cache.Invalidate(key)
		return nil
	}
	s.cache.Set(key, item{value: value, ttl: ttl, aux: new(auxCell)})
	if s.unchecked.Add(w) >= s.slack {
		// Set pushed its task to the write buffer before the Add, and the Store comes before
		// CleanUp, so a write whose bytes the Store erases is drained by this CleanUp.
		s.unchecked.Store(0)
		s.cache.CleanUp()
	}
	return nil
}

// AuxOf returns the annotation [Store.AttachAux] attached to the value stored under key, if that value
// is value (the same slice a Get returned, not just equal bytes), and nil otherwise. The stampede
// middleware keeps there what it learnt parsing the entry, so that an in-process hit is not parsed (nor
// checksummed) again. It allocates nothing.
func (s *Store) AuxOf(key string, value []byte) any {
	it, ok := s.cache.GetIfPresent(key)
	if !ok || it.aux == nil || !same(it.value, value) {
		return nil
	}
	if b := it.aux.p.Load(); b != nil {
		return b.v
	}
	return nil
}

// same reports whether a and b are the same slice.
func same(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// AttachAux attaches aux to the value stored under key, if that value is still value (the same slice,
// not just equal bytes); it does nothing otherwise. The annotation lives and dies with the value.
func (s *Store) AttachAux(key string, value []byte, aux any) {
	it, ok := s.cache.GetIfPresent(key)
	if !ok || it.aux == nil || !same(it.value, value) {
		return
	}
	it.aux.p.Store(&auxBox{v: aux})
}

// Delete removes key. Deleting a missing key is not an error; the error is always nil.
func (s *Store) Delete(_ context.Context, key string) error {
	s.cache.Invalidate(key)
	return nil
}

// Stats is a snapshot of a [Store]'s size and of its removals since it was created.
type Stats struct {
	// Entries is the number of entries held, possibly including expired ones not yet removed.
	Entries int
	// Bytes is the sum of the charges of the entries the eviction policy has accounted for. Writes
	// still in its buffer are not included, so the memory in use may briefly be higher.
	Bytes int64
	// MaxBytes is the budget given to New.
	MaxBytes int64
	// Evictions counts entries removed to keep within the budget, including new entries that the
	// admission policy turned away at once.
	Evictions uint64
	// Expirations counts entries removed because their ttl passed. Entries that were overwritten or
	// deleted after expiring may not be counted.
	Expirations uint64
	// Rejected counts SetEx calls whose entry alone was larger than the budget.
	Rejected uint64
}

// Stats returns the store's current size and counters. It applies pending writes to the eviction
// policy first, so it takes a lock that writes contend for: call it for metrics, not per request.
func (s *Store) Stats() Stats {
	return Stats{
		Entries:     s.Len(),
		Bytes:       s.Bytes(),
		MaxBytes:    s.maxBytes,
		Evictions:   s.evictions.Load(),
		Expirations: s.expirations.Load(),
		Rejected:    s.rejected.Load(),
	}
}

// Len returns the number of entries held, possibly including expired ones not yet removed.
func (s *Store) Len() int {
	return s.cache.EstimatedSize()
}

// Bytes returns the sum of the charges of the entries the eviction policy has accounted for; see
// [Stats].Bytes.
func (s *Store) Bytes() int64 {
	return int64(s.cache.WeightedSize()) //nolint:gosec // bounded by MaximumWeight, an int64
}

// CleanUp applies pending writes to the eviction policy, evicts until the store is within its budget
// and removes expired entries. The store does this by itself in the background; CleanUp is for tests
// and for callers that want Stats to reflect every write made before it.
func (s *Store) CleanUp() {
	s.cache.CleanUp()
}

// Close stops the goroutine that periodically removes expired entries. The store remains usable:
// expired entries are still never returned, and writes go on removing them. Close is idempotent.
//
// An unreachable store stops the goroutine by itself at its next tick; Close is for tests that check
// for leaked goroutines, and must be called inside a testing/synctest bubble that created the store.
func (s *Store) Close() {
	s.cache.StopAllGoroutines()
}

// CallTimeout reports that the store's calls never block (they touch memory only), so the middleware
// need not bound each one with a deadline of its own; that keeps a hit free of timer allocations.
func (s *Store) CallTimeout() time.Duration { return 0 }

// Evictions returns the number of entries removed to keep within the budget; see [Stats].Evictions.
// It is one atomic load, for callers that poll it often.
func (s *Store) Evictions() uint64 { return s.evictions.Load() }
