// Package stampede is net/http middleware that stops cache stampedes.
//
// Identical concurrent requests are coalesced into one run of the wrapped handler; the recorded response
// is replayed to every request that waited for it and, when it is safe to share, kept in a [Store] for
// later requests. The memory store (backends/memstore, bounded by bytes) is the default choice for one
// process; backends/redisstore shares entries between replicas.
//
//	store, _ := memstore.New(64 << 20)
//	r := chi.NewRouter()
//	r.Use(stampede.Handler(logger, store, time.Minute))
//
// What is shared is decided per response, never guessed: a response with Set-Cookie, Cache-Control
// private or no-store, Vary: *, one that was streamed (flushed) or hijacked, or one larger than the body
// limit reaches its own client only; requests that waited for it run the handler themselves and the key
// goes straight to the handler for a short while (hit-for-pass). A request with Authorization shares only
// responses that say public, s-maxage or must-revalidate, unless Authorization is part of the key.
//
// The key is the method (HEAD counts as GET), scheme, host, path (case kept, escapes normalised), the
// query with its parameters sorted, the values of the request headers named by
// [WithHTTPCacheKeyRequestHeaders], the body digest for keyed methods, and the result of a [KeyFunc]. It is
// hashed (SHA-256, 128 bits kept) so store keys are short whatever the URL.
//
// Every response carries X-Cache: HIT (from the store), COALESCED (replayed from a run another request
// led), MISS (this request ran the handler) or BYPASS (passed through untouched).
//
// The store can only ever cost a miss: errors, timeouts and undecodable entries count as misses, and a
// store that keeps failing is skipped for a back-off by a circuit breaker. [Cache] owns one middleware's
// state; [Handler], [HandlerWithKey] and [Singleflight] are the shorthands most users need.
//
// Each Cache counts what it does, with no global registry: [Cache.Snapshot] returns its requests, hits,
// misses, coalesced waiters, passes by reason, handler runs, failures and time, store errors, breaker
// state and memory-store size, with derived rates. [StatsHandler] serves them as JSON and as a live HTML
// page; the package metrics/prometheus exports them to Prometheus. Every request's outcome is logged at
// debug level with the digest of its key, never the key material.
//
// # Caching a function
//
// The same engine caches the values of a function, not only responses. A [Loader] is built once around
// a load function (a database query, an RPC) and keyed by any comparable type: [Loader.Get] loads a key
// once however many callers ask at once, [Loader.GetMany] reads many keys in one store call and loads the
// missing ones with one batch call, and the middleware's guarantees hold (detached loads bounded by the
// compute timeout, panics contained, stale-while-revalidate, early refresh, fleet coalescing, stats).
// Values are kept as Go values in memory ([WithValues], backends/memstore's Values) or encoded in any
// [Store] ([WithStore], [Codec]). [NewStampede] and [Stampede.Do] are go-chi/stampede's function API,
// with the same signatures.
//
//	users := stampede.NewLoader("users", db.UserByID, stampede.WithValues(values), stampede.WithTTL(time.Minute))
//	u, err := users.Get(ctx, 42)
package stampede
