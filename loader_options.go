package stampede

import (
	"fmt"
	"log/slog"
	"time"
)

// LoaderOption configures a [Loader]. Every [Option] is a LoaderOption: those that are not about HTTP
// mean for a loader what they mean for the middleware (see the behaviour contract, §8): [WithTTL] (default
// [DefaultCacheTTL]), [WithSkipCache], [WithStaleWhileRevalidate], [WithStaleIfError],
// [WithEarlyRefresh], [WithMinUses], [WithComputeTimeout], [WithStoreTimeout], [WithCircuitBreaker],
// [WithKeyPrefix], [WithKeyVersion], [WithClock] and [WithFleetCoalescing]. The HTTP ones are ignored.
// The options below are a loader's own.
type LoaderOption interface {
	applyLoader(c *loaderConfig)
}

// applyLoader makes every Option a LoaderOption.
func (o Option) applyLoader(c *loaderConfig) {
	if o != nil {
		o(&c.config)
	}
}

// loaderOption is a loader's own option.
type loaderOption func(c *loaderConfig)

func (o loaderOption) applyLoader(c *loaderConfig) { o(c) }

// loaderConfig is a Loader's settings: the middleware's, and its own.
type loaderConfig struct {
	config
	logger   *slog.Logger
	store    Store
	values   ValueStore[any]
	localTTL time.Duration
	codec    Codec
	batch    any // a BatchLoadFunc[K, V], checked against the loader's K and V when it is built
	keyText  any // a func(K) string, checked likewise
	errTTL   func(error) time.Duration
	bufSize  int
	bufWait  time.Duration
	// localEntries bounds the in-process tier of a loader without a store.
	localEntries int
}

// WithStore keeps a [Loader]'s values in store, encoded with the loader's [Codec] (JSON by default)
// inside stampede's checksummed entry format; by default values are kept in a bounded in-process tier
// instead (see [WithLocalEntries]). Any
// [Store] fits: backends/memstore, backends/redisstore (whose BatchGet makes [Loader.GetMany] one MGET
// per cluster slot, and whose leases give [WithFleetCoalescing]), backends/tieredstore.
func WithStore(store Store) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.store = store })
}

// WithValues keeps a [Loader]'s values in store as Go values, never encoded, for in-process use; by
// default they are kept in a bounded in-process tier of the loader's own (see [WithLocalEntries]). Use
// backends/memstore's Values (memstore.NewValues[any]): a hit is then a map look-up that allocates
// nothing. Callers share the values the store holds, so they must not modify them. With [WithStore] too,
// store is a tier in front of that one: a value read or loaded is kept here for at most [WithLocalTTL]
// and never past its freshness, and dropped when the shared store announces that it was invalidated
// (backends/redisstore does, for every replica).
func WithValues(store ValueStore[any]) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.values = store })
}

// WithLocalTTL caps how long a [Loader] with both [WithValues] and [WithStore] keeps a value in its
// in-process tier; the default is [DefaultLocalTTL] (5 s), zero means the default too.
func WithLocalTTL(d time.Duration) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.localTTL = d })
}

// WithCodec sets how a [Loader]'s values are encoded for its [Store]; the default is [JSON] (nil means
// the default too). The module github.com/seed-a1426414/stampede/codec/cbor has a compact binary codec.
func WithCodec(codec Codec) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.codec = codec })
}

// WithBatchLoad gives a [Loader] a function that loads many keys in one call; by default
// [Loader.GetMany] loads its misses one key at a time, concurrently. Its key and value types must be the
// loader's, or [NewLoader] panics.
func WithBatchLoad[K comparable, V any](fn BatchLoadFunc[K, V]) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.batch = fn })
}

// WithErrorTTL keeps a load's failure for fn(err) (missing-record storage, negative caching); by
// default failures are never kept. While it is kept, calls for the key get a [*CachedError] with the
// original message, without loading; zero or less keeps nothing. To keep only the records that do not
// exist:
//
//	stampede.WithErrorTTL(func(err error) time.Duration {
//		if errors.Is(err, stampede.ErrNotFound) {
//			return time.Minute
//		}
//		return 0
//	})
func WithErrorTTL(fn func(err error) time.Duration) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.errTTL = fn })
}

// WithRefreshBuffering collects a [Loader]'s background refreshes (stale-while-revalidate and early
// refresh) into batches for its batch load function: a batch is loaded once it holds size keys or wait
// has passed since its first key. By default each refresh loads its key alone, at once. It needs
// [WithBatchLoad]; size must be above zero and wait at least zero.
func WithRefreshBuffering(size int, wait time.Duration) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.bufSize, c.bufWait = size, wait })
}

// WithKeyString sets how a [Loader] turns a key into the string its store key is derived from; by
// default strings are used as they are, integers and booleans in decimal, and other types as fmt's %v
// prints them (give this option for those: pointers print as addresses). Two keys must map to the same
// string only if they are the same key. Its key type must be the loader's, or [NewLoader] panics.
func WithKeyString[K comparable](fn func(k K) string) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.keyText = fn })
}

// WithLocalEntries bounds the in-process tier that keeps a [Loader]'s values when it has neither
// [WithStore] nor [WithValues]: at most n values, the least useful evicted first (otter's W-TinyLFU);
// the default is [DefaultLocalEntries], and zero means the default too. A loader with a store keeps its
// values there instead, and this option does nothing for it.
func WithLocalEntries(n int) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.localEntries = n })
}

// WithLogger sets the logger of a [Loader]; the default is slog.Default().
func WithLogger(logger *slog.Logger) LoaderOption {
	return loaderOption(func(c *loaderConfig) { c.logger = logger })
}

// validate panics, with a message starting "stampede: ", on a loader configuration that cannot work.
func (c *loaderConfig) validate() {
	c.config.validate()
	if c.localTTL == 0 {
		c.localTTL = DefaultLocalTTL
	}
	if c.codec == nil {
		c.codec = JSON
	}
	if c.localEntries == 0 {
		c.localEntries = DefaultLocalEntries
	}
	check := func(ok bool, format string, args ...any) {
		if !ok {
			panic(fmt.Sprintf("stampede: "+format, args...))
		}
	}
	check(c.localTTL > 0, "WithLocalTTL expects d >= 0, got %v", c.localTTL)
	check(c.localEntries > 0, "WithLocalEntries expects n >= 0, got %d", c.localEntries)
	check(c.bufSize >= 0 && c.bufWait >= 0, "WithRefreshBuffering expects size > 0 and wait >= 0, got %d, %v", c.bufSize, c.bufWait)
	check(c.bufSize == 0 || c.batch != nil, "WithRefreshBuffering needs WithBatchLoad")
}
