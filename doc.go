// Package stampede is net/http middleware that stops cache stampedes, and a cache for functions built
// on the same engine.
//
// Identical concurrent requests are coalesced into one run of the wrapped handler; the recorded response
// is replayed to every request that waited for it and, when it is safe to share, kept in a [Store] for
// later requests. A [Loader] does the same for a function's values: one load per key, however many
// callers ask.
//
// # Quick start
//
//	store, err := memstore.New(64 << 20) // backends/memstore: 64 MiB, bounded by bytes
//	if err != nil {
//		log.Fatal(err)
//	}
//	products := stampede.New(logger, store, time.Minute, stampede.WithName("products"))
//
//	r := chi.NewRouter()
//	r.Handle("/debug/stampede", stampede.StatsHandler(products)) // outside the cache
//	r.Group(func(r chi.Router) {
//		r.Use(products.Handler)
//		r.Get("/products", listProducts)
//	})
//
// [Handler], [HandlerWithKey] and [Singleflight] are go-chi/stampede's shorthands, with its signatures;
// [New] returns the [Cache] behind them, whose counters [Cache.Snapshot] reads. Options are functions
// ([WithTTL], [WithKeyFunc], ...); the zero value of each means its default, and a value that can never
// work panics when the middleware is built, never while serving.
//
// Every response carries X-Cache: HIT (from the store), COALESCED (replayed from a run another request
// led), MISS (this request ran the handler) or BYPASS (passed through untouched), and Cache-Status (RFC
// 9211) with the details.
//
// # What is shared
//
// What is shared is decided per response, never guessed: a response with Set-Cookie, Cache-Control
// private or no-store, Vary: *, a 206, a Server-Sent Events stream, one that was hijacked or wrote less
// than its Content-Length, or one larger than the body limit reaches its own client only; requests that
// waited for it run the handler themselves and the key goes straight to the handler for a short while
// (hit-for-pass). Any other response, one that flushes included, is streamed to the waiting requests as
// the handler writes it, and stored when its freshness allows. A request with Authorization shares only
// responses that say public, s-maxage or must-revalidate, unless the credential is part of the key
// ([WithHTTPCacheKeyRequestHeaders], [PerCredential]).
//
// The key is the method (HEAD counts as GET), scheme, host, path (case kept, escapes normalised), the
// query with its parameters sorted, the values of the request headers named by
// [WithHTTPCacheKeyRequestHeaders], the body digest for keyed methods, and the result of a [KeyFunc]. It is
// hashed (SHA-256, 128 bits kept) so store keys are short whatever the URL. A KeyFunc that returns
// [ErrNotCached] passes its request through uncached.
//
// # Stores
//
// backends/memstore (bounded by bytes) is the store for one process; backends/redisstore shares entries
// between replicas, and with [WithFleetCoalescing] runs the handler once per key for the whole fleet;
// backends/tieredstore puts a memory tier in front of it. The store can only ever cost a miss: errors,
// timeouts and undecodable entries count as misses, and a store that keeps failing is skipped for a
// back-off by a circuit breaker. What a store offers beyond [Store] is detected from its method set
// ([BatchStore], [LeaseStore], [TagStore], ...).
//
// # Caching a function
//
// A [Loader] is built once around a load function (a database query, an RPC) and keyed by any comparable
// type: [Loader.Get] loads a key once however many callers ask at once, [Loader.GetMany] reads many keys
// in one store call and loads the missing ones with one batch call, and the middleware's guarantees hold
// (detached loads bounded by the compute timeout, panics contained, stale-while-revalidate, early
// refresh, fleet coalescing, stats). Without a store option its values are kept in a bounded in-process
// tier ([WithLocalEntries]); [WithValues] and [WithStore] keep them elsewhere. [NewStampede] and
// [Stampede.Do] are go-chi/stampede's function API, with the same signatures.
//
//	users := stampede.NewLoader("users", db.UserByID, stampede.WithTTL(time.Minute))
//	u, err := users.Get(ctx, 42)
//
// # Observability
//
// Each Cache and Loader counts what it does, with no global registry: [Cache.Snapshot] returns its
// requests, hits, misses, coalesced waiters, passes by reason, handler runs, failures and time, store
// errors, breaker state and memory-store size, with derived rates. [StatsHandler] serves them as JSON
// and as a live HTML page; the module metrics/prometheus exports them to Prometheus. Every request's
// outcome is logged at debug level with the digest of its key, never the key material; a setup that
// cannot do what it says (fleet coalescing on a store without leases, a cache nested in another) is
// logged once at warn level.
//
// # Further reading
//
// The repository's README and docs directory (https://github.com/seed-a1426414/stampede) hold the
// reference: every option with its default, the HTTP caching rules and Cache-Status values, the stores,
// the fleet, the metrics, and the behaviour contract the tests pin.
package stampede
