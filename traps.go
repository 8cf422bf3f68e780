package stampede

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
)

// This file reports configurations that compile and serve but quietly do something other than what
// their author meant (docs/behaviour.md §10.5): each is logged once per Cache, at warn level, when the
// Cache is built or when the first request shows it.

// reasonDeclined is the pass reason of a request whose key function returned [ErrNotCached].
const reasonDeclined = "key-declined"

// reasonNested is the pass reason of a request that reached a Cache while another Cache's run was
// serving it (a cache nested in another for the same request).
const reasonNested = "nested"

// runMarker is the context key of a run's request: a Cache that finds it on a request is nested in the
// Cache whose run made the request, and passes it through.
type runMarker struct{}

// traps remembers which of the once-only warnings a Cache has written.
type traps struct {
	credential atomic.Bool // a custom key function saw Authorization or Cookie without per-credential keying
	nested     atomic.Bool // a request reached this Cache from another Cache's run
}

// markRun returns ctx marked as the context of a run of c: a Cache that sees it is nested in c.
func (c *Cache) markRun(ctx context.Context) context.Context {
	return context.WithValue(ctx, runMarker{}, c)
}

// nestedIn returns the Cache whose run r comes from, or nil.
func nestedIn(r *http.Request) *Cache {
	outer, _ := r.Context().Value(runMarker{}).(*Cache)
	return outer
}

// passNested passes r, which came from outer's run, to next untouched: the outer cache answers and
// keys the request, so this one would only add a second key, and its own headers would be recorded by
// the outer one as the handler's. It warns once.
func (c *Cache) passNested(outer *Cache, next http.Handler, w http.ResponseWriter, r *http.Request) {
	c.stats.pass(reasonNested)
	c.logDecision(r.Context(), "", "BYPASS", reasonNested)
	if c.traps.nested.CompareAndSwap(false, true) {
		c.logger.LogAttrs(r.Context(), slog.LevelWarn,
			"stampede: cache nested in another cache for the same request; the inner one passes every such request through "+
				"(the outer one keys and stores it without the inner one's key function: give each route one cache)",
			slog.String("cache", c.cfg.name), slog.String("outer", outer.cfg.name))
	}
	next.ServeHTTP(w, r)
}

// checkCredentialKey warns once when a custom key function keys a request that carries Authorization or
// Cookie while nothing keys that credential: if the function reads the credential (go-chi's with-key
// example keys the Authorization token), the cache does not know it, and treats the request as
// anonymous-with-Authorization (shared only when public) or shares a page built for one cookie.
func (c *Cache) checkCredentialKey(r *http.Request) {
	if c.traps.credential.Load() || c.cfg.keyFuncCredential {
		return
	}
	auth := r.Header["Authorization"] != nil && !c.keys.authKeyed
	cookie := r.Header["Cookie"] != nil && !slices.Contains(c.cfg.keyHeaders, "Cookie")
	if (auth || cookie) && c.traps.credential.CompareAndSwap(false, true) {
		c.logger.LogAttrs(r.Context(), slog.LevelWarn,
			"stampede: key function used on a request with Authorization or Cookie, and nothing says it keys per credential; "+
				"if it reads the credential, wrap it with PerCredential (or use WithCredentialKeyFunc), otherwise key the header "+
				"with WithHTTPCacheKeyRequestHeaders or mark per-user pages private",
			slog.String("cache", c.cfg.name), slog.Bool("authorization", auth), slog.Bool("cookie", cookie))
	}
}

// warnConfig logs, once, when the Cache is built, the options that cannot take effect with its store.
func (c *Cache) warnConfig() {
	if c.cfg.fleetLease > 0 && c.fleet == nil {
		c.logger.LogAttrs(context.Background(), slog.LevelWarn,
			"stampede: WithFleetCoalescing does nothing: the store offers no leases (a LeaseStore, such as backends/redisstore); "+
				"coalescing stays per process",
			slog.String("cache", c.cfg.name), slog.String("store", storeTypeName(c.store)))
	}
}

// warnFleet is warnConfig's fleet check for a Loader or a Stampede.
func warnFleet(logger *slog.Logger, name string, lease bool, leases LeaseStore, store any) {
	if lease && leases == nil {
		logger.LogAttrs(context.Background(), slog.LevelWarn,
			"stampede: WithFleetCoalescing does nothing: the store offers no leases (a LeaseStore, such as backends/redisstore); "+
				"coalescing stays per process",
			slog.String("cache", name), slog.String("store", storeTypeName(store)))
	}
}

// storeTypeName names a store's type for a log line; "none" when nothing is stored.
func storeTypeName(store any) string {
	if store == nil {
		return "none"
	}
	return fmt.Sprintf("%T", store)
}
