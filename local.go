package stampede

import (
	"time"

	"github.com/maypok86/otter/v2"
)

// DefaultLocalEntries is how many values the in-process tier of a [Loader] without [WithStore] or
// [WithValues] holds when [WithLocalEntries] does not say otherwise.
const DefaultLocalEntries = 10_000

// localTier is a Loader's own in-process tier, keyed by the loader's key type: a hit is one look-up in
// otter, with no store key built, nothing hashed into a string and nothing allocated. It holds records
// for as long as they are of any use (their TTL plus the longer stale window), and otter drops them
// then; a record whose every use is fresh needs no clock on a hit.
type localTier[K comparable, V any] struct {
	cache   *otter.Cache[K, *localItem[V]]
	entries int // the bound, for Snapshot.Memory
}

// localItem is one record in the tier, with the time the tier keeps it.
type localItem[V any] struct {
	rec  record[V]
	life time.Duration
}

// newLocalTier returns a tier of at most entries records. clock, when not nil, replaces the real time
// for expiry (WithClock).
func newLocalTier[K comparable, V any](entries int, clock func() time.Time) *localTier[K, V] {
	o := &otter.Options[K, *localItem[V]]{
		MaximumSize: entries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[K, *localItem[V]]) time.Duration {
			return e.Value.life
		}),
	}
	if clock != nil {
		o.Clock = otterClock{clock}
	}
	return &localTier[K, V]{cache: otter.Must(o), entries: entries}
}

// get returns k's record, if the tier holds one that is still of use.
func (t *localTier[K, V]) get(k K) (*localItem[V], bool) { return t.cache.GetIfPresent(k) }

// set keeps rec for k for life (above zero), replacing what was there.
func (t *localTier[K, V]) set(k K, rec *record[V], life time.Duration) {
	t.cache.Set(k, &localItem[V]{rec: *rec, life: life})
}

// del drops k.
func (t *localTier[K, V]) del(k K) { t.cache.Invalidate(k) }

// close stops otter's clean-up goroutine.
func (t *localTier[K, V]) close() { t.cache.StopAllGoroutines() }

// len and so on, for Snapshot.Memory.
func (t *localTier[K, V]) Len() int        { return t.cache.EstimatedSize() }
func (t *localTier[K, V]) Bytes() int64    { return 0 }
func (t *localTier[K, V]) MaxEntries() int { return t.entries }

// otterClock is the configured clock as otter's: no ticks, so no periodic clean-up (entries still
// expire on read and are evicted by size).
type otterClock struct{ now func() time.Time }

func (c otterClock) NowNano() int64                      { return c.now().UnixNano() }
func (c otterClock) Tick(time.Duration) <-chan time.Time { return nil }
