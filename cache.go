package stampede

import (
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/storecall"
)

// Cache owns one middleware's state: its configuration, the requests in flight, the keys in a pass
// window and the circuit breaker in front of its store. Build it with [New]; its [Cache.Handler] method
// is the middleware. [Handler], [HandlerWithKey] and [Singleflight] are shorthands for the common cases.
// A Cache is safe for concurrent use; wrap as many handlers with it as you like (keys include the path).
type Cache struct {
	cfg     config
	store   Store // nil when nothing is stored (coalesce only)
	logger  *slog.Logger
	keys    keyer
	flights flight.Group[string, *outcome] // keyed by store key, fenced by the URL's key
	pass    passList
	calls   *storecall.Calls // the store-call convention: breaker, deadlines, leases, tickets
	door    *doorkeeper      // nil unless WithMinUses asks for more than one use
	// background counts background refreshes in flight.
	background flight.Tracker
	// onJoin, when set (by tests), is called as a request starts waiting on another's run.
	onJoin func()
	stats  stats // see [Cache.Snapshot]
	// fleet is the store's lease interface when WithFleetCoalescing is on and the store offers it.
	fleet LeaseStore
	// fenced is the store's fenced writes when it offers them (see [FencedStore]): every run takes a
	// ticket (or uses its lease) and writes with it, and invalidations revoke them.
	fenced FencedStore
	tags   *tagIndex      // in-process tag index, for stores that keep none (see [Cache.PurgeTag])
	tagged TagStore       // the store's tag index, when it keeps one
	aux    AnnotatedStore // the store, when it keeps annotations (see [AnnotatedStore])
	// unsubscribe ends the subscriptions to the store's announcements; nil when there are none.
	unsubscribe []func()
	echoes      storecall.Echoes // this process's own invalidations, whose announcements come back
	traps       traps            // the once-only warnings written (traps.go)
}

// New builds a Cache. A nil logger means slog.Default(). A nil store, ttl == 0 or WithSkipCache(true)
// means concurrent requests are coalesced but nothing is stored. A typed nil store (a nil *T in the
// interface) and invalid options panic here, with a message starting "stampede: ", never while serving.
func New(logger *slog.Logger, store Store, ttl time.Duration, opts ...Option) *Cache {
	cfg := defaultConfig()
	cfg.ttl = ttl
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	cfg.validate()
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.name == "" {
		cfg.name = cfg.keyPrefix
	}
	if !storeGiven("New", store) || cfg.ttl == 0 || cfg.skipCache {
		store = nil
	}
	c := &Cache{cfg: cfg, store: store, logger: logger}
	defer c.warnConfig()
	c.keys = keyer{
		prefix:    cfg.keyPrefix + ":" + cfg.keyVersion + ":{",
		headers:   cfg.keyHeaders,
		authKeyed: slices.Contains(cfg.keyHeaders, "Authorization") || cfg.keyFuncCredential,
		keyFunc:   cfg.keyFunc,
		memo:      newKeyMemo(),
	}
	c.pass.ttl = cfg.passTTL
	if cfg.minUses > 1 {
		c.door = &doorkeeper{minUses: cfg.minUses, window: cfg.minUsesWindow}
	}
	c.calls = storecall.New(storecall.Config{
		Timeout: cfg.storeTimeout, Bounded: storecall.SelfBounded(store, cfg.storeTimeout), Clock: cfg.clock,
		Logger: logger, Name: cfg.name, Threshold: cfg.breakerFails, Backoff: cfg.breakerBackoff,
		GetErrors: &c.stats.getErrors, SetErrors: &c.stats.setErrors, Fenced: &c.stats.fleetFenced,
		Observe: storeObserver(&c.stats, &cfg, cfg.name),
	})
	if store == nil {
		return c
	}
	if a, ok := store.(AnnotatedStore); ok {
		c.aux = a
	}
	if fs, ok := store.(FencedStore); ok {
		c.fenced = fs
		if ls, ok := store.(LeaseStore); ok && cfg.fleetLease > 0 {
			c.fleet = ls
		}
	}
	if ts, ok := tagStoreOf(store); ok {
		c.tagged = ts
	} else {
		var holds func(string) bool
		if hs, ok := store.(HoldingStore); ok {
			holds = hs.Holds
		}
		c.tags = newTagIndex(maxTaggedKeys, holds)
	}
	c.subscribe(store)
	return c
}

// subscribe follows the store's announcements of invalidations made through any replica: the runs of
// this process that such an invalidation reached are no longer joined (their writes are refused by the
// store already).
func (c *Cache) subscribe(store Store) {
	if inv, ok := store.(InvalidationStore); ok {
		c.unsubscribe = append(c.unsubscribe, inv.Invalidations(c.invalidatedElsewhere))
	}
	if inv, ok := store.(TagInvalidationStore); ok {
		c.unsubscribe = append(c.unsubscribe, inv.TagInvalidations(func(tag string) {
			if !c.echoes.Own("\x00tag:" + tag) {
				c.flights.InvalidateLabel(tag, nil)
			}
		}))
	}
}

// invalidatedElsewhere is told of a store key invalidated through any replica (this one included).
func (c *Cache) invalidatedElsewhere(storeKey string) {
	if c.echoes.Own(storeKey) {
		return
	}
	if k, ok := c.keys.parse(primaryOf(storeKey)); ok {
		c.flights.Invalidate(k.s, k.id, nil)
	}
}

// Close ends the cache's subscriptions to its store's announcements (see [InvalidationStore]) and
// waits for its background work, as [Cache.Wait] does. It closes no store. A Cache needs no Close unless
// it is dropped while the program goes on (in tests, say); it keeps working afterwards, without
// following other replicas' invalidations.
func (c *Cache) Close() {
	for _, stop := range c.unsubscribe {
		stop()
	}
	c.unsubscribe = nil
	c.Wait()
}

// Handler is the middleware: it wraps next so identical concurrent requests run it once, and storable
// responses are replayed from the store until they expire.
func (c *Cache) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(next, w, r) })
}

// Wait blocks until every background refresh and every store write started by finished requests is
// done. Writes happen in the background so a response is not delayed by them; call Wait before shutting
// down, or in tests.
func (c *Cache) Wait() {
	c.background.Wait()
	c.flights.Wait()
}

// Handler returns middleware that coalesces identical concurrent requests and stores shareable responses
// in store for ttl. It is New(logger, store, ttl, opts...).Handler.
func Handler(logger *slog.Logger, store Store, ttl time.Duration, opts ...Option) func(http.Handler) http.Handler {
	return New(logger, store, ttl, opts...).Handler
}

// HandlerWithKey is [Handler] with keyFunc's result added to every key, for example a tenant id, so
// requests from different tenants never share a response. A keyFunc error passes the request through.
//
// keyFunc is any so that both key function shapes fit: a [KeyFunc] (or a func literal returning
// (string, error)), go-chi/stampede's [CacheKeyFunc] (or a literal returning (uint64, error)), a
// [CredentialKeyFunc] from [PerCredential] (the function keys on the caller's credential, so requests
// with Authorization are shared within their key), or nil, which makes it [Handler], as in go-chi.
// Anything else panics here, with a message starting "stampede: ", never while serving.
func HandlerWithKey(logger *slog.Logger, store Store, ttl time.Duration, keyFunc any, opts ...Option) func(http.Handler) http.Handler {
	kf, credential := keyFuncOf(keyFunc)
	if kf == nil {
		return New(logger, store, ttl, opts...).Handler
	}
	first := WithKeyFunc(kf)
	if credential {
		first = WithCredentialKeyFunc(CredentialKeyFunc(kf))
	}
	return New(logger, store, ttl, append([]Option{first}, opts...)...).Handler
}

// Singleflight returns middleware that coalesces identical concurrent GET and HEAD requests without
// storing anything: one run of the handler serves everyone who asked while it ran. varyRequestHeaders are
// added to the key (see [WithHTTPCacheKeyRequestHeaders]).
func Singleflight(logger *slog.Logger, varyRequestHeaders []string) func(http.Handler) http.Handler {
	return New(logger, nil, 0, WithHTTPCacheKeyRequestHeaders(varyRequestHeaders)).Handler
}

// storeGiven reports whether store is a store: false for an untyped nil (no store: coalesce only). A
// typed nil (a nil pointer in the interface), which would panic on the first request, panics here, in
// the constructor named who.
func storeGiven(who string, store any) bool {
	if store == nil {
		return false
	}
	if isNil(store) {
		panic(fmt.Sprintf("stampede: %s: the store is a nil %T; pass nil itself to coalesce without storing", who, store))
	}
	return true
}

// isNil reports whether s (a store) is nil or an interface holding a nil pointer, which would panic on
// first use.
func isNil(s any) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return v.IsNil()
	}
	return false
}
