package memstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// Values is an in-process store of Go values, never encoded: stampede's function API keeps values in
// it (stampede.NewStampede takes a *Values[V]; a Loader takes a *Values[any] with stampede.WithValues
// and keeps its own records in it). It has the method set of goware/cachestore2's Store[V] that
// stampede calls (Get, SetEx, Delete), and is safe for concurrent use.
//
// Go values have no size the store could charge, so a Values is bounded by its number of entries, not
// by bytes; it evicts with otter's W-TinyLFU like [Store]. Values are shared, not copied: a value handed
// to [Values.SetEx] is what every [Values.Get] returns, so nobody may modify it afterwards. A hit
// allocates nothing.
type Values[V any] struct {
	cache      *otter.Cache[string, valueItem[V]]
	evictions  atomic.Uint64
	maxEntries int // the bound given to NewValues
}

type valueItem[V any] struct {
	value V
	ttl   time.Duration
}

// NewValues returns a Values that holds at most maxEntries values. It returns an error wrapping
// [ErrInvalidSize] if maxEntries is not above zero.
func NewValues[V any](maxEntries int, opts ...Option) (*Values[V], error) {
	if maxEntries <= 0 {
		return nil, fmt.Errorf("%w: maxEntries %d, must be above 0", ErrInvalidSize, maxEntries)
	}
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	s := &Values[V]{maxEntries: maxEntries}
	o := &otter.Options[string, valueItem[V]]{
		MaximumSize: maxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, valueItem[V]]) time.Duration {
			return e.Value.ttl
		}),
		OnAtomicDeletion: func(e otter.DeletionEvent[string, valueItem[V]]) {
			if e.Cause == otter.CauseOverflow {
				s.evictions.Add(1)
			}
		},
	}
	if cfg.clock != nil {
		o.Clock = cfg.clock
	}
	c, err := otter.New(o)
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	s.cache = c
	return s, nil
}

// Get returns the value stored under key and whether it was found; an expired value is not. The error
// is always nil.
func (s *Values[V]) Get(_ context.Context, key string) (V, bool, error) {
	it, ok := s.cache.GetIfPresent(key)
	return it.value, ok, nil
}

// SetEx stores value under key for ttl, replacing any earlier value; a ttl of zero or less stores
// nothing and removes what was there. The error is always nil.
func (s *Values[V]) SetEx(_ context.Context, key string, value V, ttl time.Duration) error {
	if ttl <= 0 {
		s.cache.Invalidate(key)
		return nil
	}
	s.cache.Set(key, valueItem[V]{value: value, ttl: ttl})
	return nil
}

// Delete removes key; a missing key is not an error. The error is always nil.
func (s *Values[V]) Delete(_ context.Context, key string) error {
	s.cache.Invalidate(key)
	return nil
}

// Len returns the number of values held, possibly including expired ones not yet removed.
func (s *Values[V]) Len() int { return s.cache.EstimatedSize() }

// Bytes returns 0: a Values does not know the size of what it holds (it is reported as a memory store
// of so many entries, bounded by [Values.MaxEntries]).
func (s *Values[V]) Bytes() int64 { return 0 }

// MaxEntries returns the most values the store holds, as given to [NewValues]: with it, a Values is a
// stampede.EntryBoundedStore, whose statistics report entries and their bound rather than bytes.
func (s *Values[V]) MaxEntries() int { return s.maxEntries }

// Evictions returns the number of values removed to keep within maxEntries.
func (s *Values[V]) Evictions() uint64 { return s.evictions.Load() }

// CleanUp applies pending writes to the eviction policy and removes expired values; for tests.
func (s *Values[V]) CleanUp() { s.cache.CleanUp() }

// Close stops the goroutine that periodically removes expired values; the store remains usable. See
// [Store.Close].
func (s *Values[V]) Close() { s.cache.StopAllGoroutines() }

// CallTimeout reports that the store's calls never block, so no deadline need bound them.
func (s *Values[V]) CallTimeout() time.Duration { return 0 }
