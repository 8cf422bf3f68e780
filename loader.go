package stampede

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"log/slog"
	"reflect"
	"strconv"
	"time"
	"unsafe"

	"github.com/seed-a1426414/stampede/internal/storecall"
)

// LoadFunc loads the value of one key: a database query, an RPC. It runs with a context detached from
// the caller that started it (values such as trace ids are kept, cancellation is not) and bounded by
// the compute timeout, so one caller leaving does not cancel it for the others. Return [ErrNotFound]
// (or an error wrapping it) for a key that has no value.
type LoadFunc[K comparable, V any] func(ctx context.Context, k K) (V, error)

// Loader is a function-level cache of the values of one load function, keyed by K: cacheme's node,
// sturdyc's client. Build it once with [NewLoader]; it is safe for concurrent use.
//
// It gives a function what the middleware gives a handler (behaviour contract §8): one load per key in
// flight per process, with zero duplicate loads (a store read that may predate a finished load's write
// reads again), and one per fleet with [WithFleetCoalescing]; callers that stop waiting as their own
// context ends while the load goes on; panics and runtime.Goexit contained; stale-while-revalidate,
// stale-if-error and early refresh; [WithMinUses]; kept failures ([WithErrorTTL]); batched reads and
// loads ([Loader.GetMany], [WithBatchLoad], [WithRefreshBuffering]); and statistics in
// [Loader.Snapshot], [StatsHandler] and the Prometheus collector.
//
// A store key is "<prefix>:<version>:{<digest>}" (see [WithKeyPrefix], [WithKeyVersion]), the digest
// taken over the loader's name and the key's string form ([WithKeyString]): loaders with different
// names never share a key, and each key has its own Redis Cluster slot.
type Loader[K comparable, V any] struct {
	e    engine[K, V]
	fast *localTier[K, V] // the in-process tier, for Get's hit path; nil when values live in a store
	// windows: records outlive their freshness (stale windows), so a hit must read the clock.
	windows bool
	prefix  []byte // the key material every key of this loader starts with
	kind    reflect.Kind
	text    func(K) string // nil: kind says how
	call    callOpts[V]
}

// NewLoader builds a Loader named name (its keys and its statistics carry the name: give each loader its
// own) around load. Invalid options panic here, with a message starting "stampede: ", never while
// serving.
func NewLoader[K comparable, V any](name string, load LoadFunc[K, V], opts ...LoaderOption) *Loader[K, V] {
	if name == "" {
		panic("stampede: NewLoader expects a name")
	}
	if load == nil {
		panic("stampede: NewLoader expects a load function")
	}
	c := loaderConfig{config: defaultConfig()}
	c.ttl = DefaultCacheTTL
	for _, o := range opts {
		if o != nil {
			o.applyLoader(&c)
		}
	}
	c.validate()
	l := &Loader[K, V]{}
	switch fn := c.batch.(type) {
	case nil:
	case BatchLoadFunc[K, V]:
		l.e.batch = fn
	default:
		panic(fmt.Sprintf("stampede: WithBatchLoad's function is a %T; loader %q needs a BatchLoadFunc[%T, %T]", c.batch, name, *new(K), *new(V)))
	}
	switch fn := c.keyText.(type) {
	case nil:
	case func(K) string:
		l.text = fn
	default:
		panic(fmt.Sprintf("stampede: WithKeyString's function is a %T; loader %q needs a func(%T) string", c.keyText, name, *new(K)))
	}
	l.kind = reflect.TypeFor[K]().Kind()
	if l.text == nil && !directKind(l.kind) {
		l.text = func(k K) string { return fmt.Sprint(k) }
	}
	l.prefix = append([]byte{tagLoader}, binary.AppendUvarint(nil, uint64(len(name)))...)
	l.prefix = append(l.prefix, name...)

	var store recordStore[V]
	var sizer any
	var bytes *bytesRecords[V]
	e := &l.e
	if storeGiven("NewLoader (WithStore)", c.store) {
		bytes = &bytesRecords[V]{store: c.store, codec: c.codec, bad: e.badValue}
		bytes.batch, _ = c.store.(BatchStore)
		bytes.fenced, _ = c.store.(FencedStore)
		store, sizer = bytes, c.store
	}
	if storeGiven("NewLoader (WithValues)", c.values) {
		values := &valueRecords[V]{store: c.values, bad: e.badValue}
		store, sizer = values, c.values
		if bytes != nil {
			store, sizer = &tieredRecords[V]{l1: values, l2: bytes, maxAge: c.localTTL, clock: c.clock}, c.store
		}
	}
	off := c.skipCache || c.ttl == 0
	if off {
		store, sizer = nil, nil
	}
	e.setup(name, "loader", c.config, c.logger, store, sizer)
	e.load, e.errTTL = load, c.errTTL
	e.skeyOf = l.key
	if store == nil && !off {
		// No store given: the values are kept in this process, in a bounded tier keyed by K itself.
		var clock func() time.Time
		if c.customClock {
			clock = c.clock
		}
		e.local = newLocalTier[K, V](c.localEntries, clock)
		e.sizer = e.local
		l.fast = e.local
		l.windows = c.staleWhileRevalidate > 0 || c.staleIfError > 0
		e.localFresh = !l.windows
	}
	if bytes != nil && store != nil {
		e.fenced = bytes.fenced
		if fs, ok := c.store.(LeaseStore); ok && c.fleetLease > 0 && e.fenced != nil {
			e.fleet = fs
		}
		if inv, ok := c.store.(InvalidationStore); ok {
			tiered, _ := store.(*tieredRecords[V])
			e.stops = append(e.stops, inv.Invalidations(func(key string) {
				if tiered != nil {
					_ = tiered.dropL1(context.Background(), key)
				}
				e.invalidatedElsewhere(key)
				if fn := e.onDropped.Load(); fn != nil {
					(*fn)(key)
				}
			}))
		}
	}
	warnFleet(e.logger, name, c.fleetLease > 0, e.fleet, c.store)
	if c.bufSize > 0 {
		e.buffer = &refreshBuffer[K, V]{e: e, size: c.bufSize, wait: c.bufWait}
	}
	l.call = e.defaultCall()
	return l
}

// setup fills in what every engine has, from a validated configuration.
func (e *engine[K, V]) setup(name, kind string, cfg config, logger *slog.Logger, store recordStore[V], sizer any) {
	if logger == nil {
		logger = slog.Default()
	}
	e.name, e.kind, e.cfg, e.logger, e.store, e.sizer = name, kind, cfg, logger, store, sizer
	e.seed = maphash.MakeSeed()
	// Loads run on goroutines of their own, which nobody waits on once the value is published: they
	// persist it themselves rather than start one more goroutine each.
	e.flights.PersistInline = true
	e.keys = keyer{prefix: cfg.keyPrefix + ":" + cfg.keyVersion + ":{", memo: newKeyMemo()}
	bounded := sizer == nil || storecall.SelfBounded(sizer, cfg.storeTimeout)
	if _, ok := store.(*tieredRecords[V]); ok {
		bounded = storecall.SelfBounded(sizer, cfg.storeTimeout)
	}
	e.calls = storecall.New(storecall.Config{
		Timeout: cfg.storeTimeout, Bounded: bounded, Clock: cfg.clock, Logger: logger, Name: name,
		Threshold: cfg.breakerFails, Backoff: cfg.breakerBackoff,
		GetErrors: &e.stats.getErrors, SetErrors: &e.stats.setErrors, Fenced: &e.stats.fleetFenced,
		Observe: storeObserver(&e.stats, &cfg, name),
	})
	if cfg.minUses > 1 {
		e.door = &doorkeeper{minUses: cfg.minUses, window: cfg.minUsesWindow}
	}
}

// directKind reports whether keys of kind are written into the key material without fmt.
func directKind(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// key returns k's key. For strings, integers and booleans it allocates nothing once the key is in the
// key memo.
func (l *Loader[K, V]) key(k K) key {
	var stack [256]byte
	b := append(stack[:0], l.prefix...)
	p := unsafe.Pointer(&k)
	switch {
	case l.text != nil:
		b = append(b, l.text(k)...)
	case l.kind == reflect.String:
		b = append(b, *(*string)(p)...)
	case l.kind == reflect.Int:
		b = strconv.AppendInt(b, int64(*(*int)(p)), 10)
	case l.kind == reflect.Int64:
		b = strconv.AppendInt(b, *(*int64)(p), 10)
	case l.kind == reflect.Int32:
		b = strconv.AppendInt(b, int64(*(*int32)(p)), 10)
	case l.kind == reflect.Int16:
		b = strconv.AppendInt(b, int64(*(*int16)(p)), 10)
	case l.kind == reflect.Int8:
		b = strconv.AppendInt(b, int64(*(*int8)(p)), 10)
	case l.kind == reflect.Uint, l.kind == reflect.Uintptr:
		b = strconv.AppendUint(b, uint64(*(*uint)(p)), 10)
	case l.kind == reflect.Uint64:
		b = strconv.AppendUint(b, *(*uint64)(p), 10)
	case l.kind == reflect.Uint32:
		b = strconv.AppendUint(b, uint64(*(*uint32)(p)), 10)
	case l.kind == reflect.Uint16:
		b = strconv.AppendUint(b, uint64(*(*uint16)(p)), 10)
	case l.kind == reflect.Uint8:
		b = strconv.AppendUint(b, uint64(*(*uint8)(p)), 10)
	case l.kind == reflect.Bool:
		b = strconv.AppendBool(b, *(*bool)(p))
	}
	return l.e.keys.keyOf(b)
}

// Get returns k's value: the stored one while it is fresh (or stale within the stale-while-revalidate
// window, refreshed meanwhile in the background), else the value of the load of k in flight, else the
// value of a load this call starts. A caller whose ctx ends stops waiting with ctx's error; the load
// goes on for the others and is stored. A load error is returned as it is (and kept when
// [WithErrorTTL] says so); a load that panics makes the call that started it panic with the same
// value, and every other caller waiting on it get a [*PanicError].
func (l *Loader[K, V]) Get(ctx context.Context, k K) (V, error) {
	if t := l.fast; t != nil {
		// The hit path of the in-process tier: one look-up. The tier drops a record once it is of no
		// use; without stale windows a record it holds is fresh, so no clock is read.
		if it, ok := t.get(k); ok && (!l.windows || it.rec.state(l.e.cfg.clock) == recFresh) &&
			l.e.cfg.xfetchBeta == 0 {
			l.e.hit(&it.rec)
			return it.rec.val, it.rec.err
		}
	}
	r := l.e.ref(k)
	return l.e.get(ctx, &r, l.call)
}

// GetMany returns the values of ks (duplicates count once) in one map. It reads them all from the
// store in one batched call (one MGET per cluster slot with backends/redisstore); for the keys it does
// not find, a key whose load is in flight, in any other call (batched or not), is taken from that load,
// and the rest are loaded with one call of the batch load function ([WithBatchLoad]), or one load each,
// concurrently, without one.
//
// Keys that do not exist ([ErrNotFound]) are left out of the map and are not an error; the other keys
// that failed are left out too, and the error joins theirs, each naming its key. When ctx ends, GetMany
// returns what it has with ctx's error; the loads go on.
func (l *Loader[K, V]) GetMany(ctx context.Context, ks []K) (map[K]V, error) {
	return l.e.getMany(ctx, ks)
}

// Set stores v as k's value now, as if a load had returned it. Once it returns, no call returns, and no
// write stores, a value of a load of k that started before it (behaviour contract §11): loads of k in
// flight still answer the callers already waiting on them. It returns [ErrNotStored] when the store did
// not take v.
func (l *Loader[K, V]) Set(ctx context.Context, k K, v V) error {
	return l.e.set(ctx, k, v, l.call)
}

// Invalidate removes what is kept for ks, so the next call for each loads it again. Once it returns, no
// call returns, and no write stores, a value of a load that started before it (behaviour contract §11):
// loads in flight still answer the callers already waiting on them. With
// backends/redisstore (or backends/tieredstore over it) the deletion is announced to every replica,
// whose in-process tiers ([WithValues], tieredstore's L1) drop the keys at once.
func (l *Loader[K, V]) Invalidate(ctx context.Context, ks ...K) error {
	return l.e.invalidate(ctx, ks)
}

// Refresh loads k now, whatever is kept, stores the value and returns it. Loads of k in flight when it
// is called started before it: they are neither joined nor stored, and calls that arrive while it loads
// join its load.
func (l *Loader[K, V]) Refresh(ctx context.Context, k K) (V, error) {
	return l.e.forceLoad(ctx, k, l.call)
}

// Peek returns the value Get would return from the store for k, and whether there is one, without
// loading or refreshing anything. A kept failure is no value.
func (l *Loader[K, V]) Peek(ctx context.Context, k K) (V, bool) {
	return l.e.peek(ctx, k)
}

// Snapshot returns the loader's counters (see [Snapshot]; Kind is "loader").
func (l *Loader[K, V]) Snapshot() Snapshot { return l.e.snapshot() }

// Wait blocks until every load, background refresh (buffered ones are started first) and store write
// started so far has finished; for tests and graceful shutdown.
func (l *Loader[K, V]) Wait() { l.e.wait() }

// Close waits as [Loader.Wait] does and ends the loader's subscription to its store's invalidations
// (with [WithValues] and [WithStore]). It closes no store. The loader must not be used afterwards.
func (l *Loader[K, V]) Close() { l.e.close() }
