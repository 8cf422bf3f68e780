package stampede

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Observer is told how each request a [Cache] served, and each load a [Loader] or [Stampede] ran,
// ended, and how long each store call took: what a tracing or metrics module needs (metrics/otel is
// one), without access to stampede's internals. Set it with [WithObserver].
//
// Its methods are called on the goroutine of the request or load they describe, after it ended (the
// response was written), so they add to the request's time only as much as they take; they must be
// safe for concurrent use, and must not block.
type Observer interface {
	// ObserveRequest is called once per request served by a Cache, once it ended, with ctx the request's
	// context; and once per load a Loader or Stampede ran, once the load function returned (its context
	// then is the load's, which carries the values of the context of the call that started it).
	ObserveRequest(ctx context.Context, ev RequestEvent)
	// ObserveStore is called after each store call that reached the store (one the circuit breaker
	// skipped is not), with the context of the request or load it was made for, or
	// context.Background() for the writes of a run, which are made for every request waiting on it.
	ObserveStore(ctx context.Context, call StoreCall)
}

// RequestEvent is how one request, or one load, ended.
type RequestEvent struct {
	// Cache is the name of the Cache or Loader ([WithName], or the name given to [NewLoader]), and Kind
	// its [Snapshot].Kind: "http", "loader" or "function".
	Cache, Kind string
	// Outcome is the request's X-Cache value: "HIT", "MISS", "COALESCED", "BYPASS", or "REFRESH" for a
	// background refresh; "LOAD" for a load of the function API; empty for a waiter whose client left
	// before it was answered ([Snapshot].Abandoned). Reason says why a request passed, or
	// how a hit was served ("stale-while-revalidate", "max-stale", "compute-timeout"); empty otherwise.
	Outcome, Reason string
	// Key is the hex digest of the request's store key, as logged: never the key material. Empty when
	// the request passed through before it was keyed.
	Key string
	// Method and Path are the request's; Route the pattern of the route that served it
	// (http.Request.Pattern, which net/http's ServeMux and chi set): empty when no router had matched it
	// by the time it ended, as for a hit served by a cache in front of the router. Empty for a load.
	Method, Path, Route string
	// Duration is the time from the request's arrival at the cache to the end of its response; for a
	// load, the load function's time, as Run.
	Duration time.Duration
	// Run is the time of the handler run (or load) this request led; 0 when it led none (a hit, a
	// waiter, a pass). Status is that run's status code, 0 when it led none.
	Run    time.Duration
	Status int
	// StoreCalls counts the store calls made for this request (reads, leases, tickets; not the run's
	// writes, which are made after it was answered), StoreTime their total time, StoreErrors those
	// that failed or timed out. Zero for a load.
	StoreCalls, StoreErrors int
	StoreTime               time.Duration
	// Err is a load's error; nil for a request.
	Err error
}

// StoreCall is one call that reached the store.
type StoreCall struct {
	// Cache is the name of the Cache or Loader that made the call.
	Cache string
	// Op is the call: "get", "set", "delete", "lease", "ticket" or "tag".
	Op string
	// Duration is how long the call took, Err its error (a timeout included).
	Duration time.Duration
	Err      error
}

// WithObserver adds o to the observers told of every request's or load's end and of every store call;
// by default there are none. WithObserver may be given more than once; a nil o is ignored. An observer
// also turns on [WithStoreTimings].
func WithObserver(o Observer) Option {
	return func(c *config) {
		if o != nil {
			c.observers = append(c.observers, o)
			c.storeTimings = true
		}
	}
}

// WithStoreTimings makes a Cache or Loader time every store call into [Snapshot].StoreTimes (the
// Prometheus collector's stampede_store_duration_seconds); off by default, because it reads the clock
// twice per store call, which a memory hit would notice. [WithObserver] turns it on.
func WithStoreTimings(on bool) Option {
	return func(c *config) { c.storeTimings = on }
}

// observers is the observers of one Cache or Loader, as one; nil when there are none.
type observers []Observer

func (os observers) ObserveRequest(ctx context.Context, ev RequestEvent) {
	for _, o := range os {
		o.ObserveRequest(ctx, ev)
	}
}

func (os observers) ObserveStore(ctx context.Context, call StoreCall) {
	for _, o := range os {
		o.ObserveStore(ctx, call)
	}
}

// storeOps are the store calls timed into [Snapshot].StoreTimes, in slot order.
var storeOps = [...]string{"get", "set", "delete", "lease", "ticket", "tag"}

// storeTimeBounds are the upper bounds of the store-time histogram's buckets: a memory store's calls
// to a store timeout.
var storeTimeBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second,
}

// storeTimes is the store-time histogram of one operation.
type storeTimes struct {
	counts [len(storeTimeBounds) + 1]atomic.Uint64
	nanos  atomic.Int64
}

// storeObserver returns the function storecall tells of each store call, or nil when nothing is timed
// or observed (storecall then reads no clock).
func storeObserver(s *stats, cfg *config, name string) func(ctx context.Context, op string, d time.Duration, err error) {
	if !cfg.storeTimings && len(cfg.observers) == 0 {
		return nil
	}
	obs := observers(cfg.observers)
	s.storeTimed = true
	return func(ctx context.Context, op string, d time.Duration, err error) {
		s.storeCall(op, d)
		if o := observationOf(ctx); o != nil {
			o.storeCall(d, err)
		}
		if obs != nil {
			obs.ObserveStore(ctx, StoreCall{Cache: name, Op: op, Duration: d, Err: err})
		}
	}
}

// storeCall counts a store call op that took d.
func (s *stats) storeCall(op string, d time.Duration) {
	slot := -1
	for i, o := range storeOps {
		if o == op {
			slot = i
			break
		}
	}
	if slot < 0 {
		return
	}
	t := &s.storeTimes[slot]
	i := 0
	for i < len(storeTimeBounds) && d > storeTimeBounds[i] {
		i++
	}
	t.nanos.Add(int64(d))
	t.counts[i].Add(1)
}

// storeTimesSnapshot returns the store-time histograms, nil when store calls are not timed.
func (s *stats) storeTimesSnapshot() map[string]Histogram {
	if !s.storeTimed {
		return nil
	}
	m := make(map[string]Histogram, len(storeOps))
	for i, op := range storeOps {
		t := &s.storeTimes[i]
		h := Histogram{Bounds: make([]float64, len(storeTimeBounds)), Counts: make([]uint64, len(t.counts))}
		for j, b := range storeTimeBounds {
			h.Bounds[j] = b.Seconds()
		}
		h.Sum = time.Duration(t.nanos.Load()).Seconds()
		for j := range t.counts {
			h.Counts[j] = t.counts[j].Load()
			h.Count += h.Counts[j]
		}
		m[op] = h
	}
	return m
}

// observation is what is known of one observed request (one with an observer, or logged at debug
// level) while it is served: it travels in the request's context, and what decides the request's
// outcome, leads its run or calls the store for it writes into it.
type observation struct {
	began  time.Time
	method string
	path   string

	mu          sync.Mutex // guards the fields below: a run's store calls may come from its own goroutines
	decided     bool
	outcome     string
	reason      string
	key         string
	route       string
	run         time.Duration
	status      int
	storeCalls  int
	storeErrors int
	storeTime   time.Duration
}

// observationKey is the context key of a request's *observation.
type observationKey struct{}

// observationOf returns the observation ctx carries, or nil.
func observationOf(ctx context.Context) *observation {
	o, _ := ctx.Value(observationKey{}).(*observation)
	return o
}

func (o *observation) storeCall(d time.Duration, err error) {
	o.mu.Lock()
	o.storeCalls++
	o.storeTime += d
	if err != nil {
		o.storeErrors++
	}
	o.mu.Unlock()
}

// decide records how the request is served. The first decision stands: a request decided once (a
// waiter that then ran the handler itself is still counted where it was counted first) is logged once.
func (o *observation) decide(storeKey, outcome, reason string) {
	o.mu.Lock()
	if !o.decided {
		o.decided, o.outcome, o.reason, o.key = true, outcome, reason, keyDigest(storeKey)
	}
	o.mu.Unlock()
}

// observed reports whether the requests of c are observed: it has observers, or logs at debug level.
func (c *Cache) observed(r *http.Request) bool {
	return len(c.cfg.observers) > 0 || c.logger.Enabled(r.Context(), slog.LevelDebug)
}

// serveObserved serves r as serve does, with an observation in its context, and reports its end.
func (c *Cache) serveObserved(next http.Handler, w http.ResponseWriter, r *http.Request) {
	o := &observation{began: time.Now(), method: r.Method, path: r.URL.Path}
	r = r.WithContext(context.WithValue(r.Context(), observationKey{}, o))
	defer c.endObserved(r, o)
	c.serveRequest(next, w, r)
}

// endObserved reports the end of the observed request r: to the observers, and in the debug log.
func (c *Cache) endObserved(r *http.Request, o *observation) {
	ev := o.event(c.cfg.name, "http", time.Since(o.began))
	if ev.Route == "" {
		ev.Route = r.Pattern
	}
	if len(c.cfg.observers) > 0 {
		observers(c.cfg.observers).ObserveRequest(r.Context(), ev)
	}
	if c.logger.Enabled(r.Context(), slog.LevelDebug) {
		logRequest(r.Context(), c.logger, &ev)
	}
}

// event returns the RequestEvent of o.
func (o *observation) event(cache, kind string, d time.Duration) RequestEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return RequestEvent{
		Cache: cache, Kind: kind, Outcome: o.outcome, Reason: o.reason, Key: o.key,
		Method: o.method, Path: o.path, Route: o.route, Duration: d, Run: o.run, Status: o.status,
		StoreCalls: o.storeCalls, StoreErrors: o.storeErrors, StoreTime: o.storeTime,
	}
}

// logRequest writes the debug line of a request's end. The path is left out, as the key material is:
// it may carry user data (an id, a token); the route pattern carries none.
func logRequest(ctx context.Context, logger *slog.Logger, ev *RequestEvent) {
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("cache", ev.Cache), slog.String("outcome", ev.Outcome))
	if ev.Reason != "" {
		attrs = append(attrs, slog.String("reason", ev.Reason))
	}
	if ev.Key != "" {
		attrs = append(attrs, slog.String("key", ev.Key))
	}
	attrs = append(attrs, slog.String("method", ev.Method))
	if ev.Route != "" {
		attrs = append(attrs, slog.String("route", ev.Route))
	}
	attrs = append(attrs, slog.Duration("duration", ev.Duration))
	if ev.StoreErrors > 0 {
		attrs = append(attrs, slog.Int("store_errors", ev.StoreErrors))
	}
	logger.LogAttrs(ctx, slog.LevelDebug, "stampede: request", attrs...)
}

// runEnded is told, on the leading request's goroutine, that the handler run l led ended after d:
// it is logged at debug level, and recorded in the leading request's observation (a background
// refresh's own observation is reported here, since no request waits for it).
func (l *leader) runEnded(d time.Duration, status int) {
	c := l.c
	ctx := l.r.Context()
	o := observationOf(ctx)
	if o == nil && !c.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	if c.logger.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("cache", c.cfg.name), slog.String("key", keyDigest(l.o.k.s)),
			slog.Int("status", status), slog.Duration("duration", d)}
		if !l.ended || l.failed {
			attrs = append(attrs, slog.Bool("panicked", true))
		}
		c.logger.LogAttrs(ctx, slog.LevelDebug, "stampede: run", attrs...)
	}
	if o == nil {
		return
	}
	o.mu.Lock()
	o.run, o.status = d, status
	if l.run != nil && l.run.Pattern != "" {
		o.route = l.run.Pattern // the router ran on the run's request, a copy of the client's
	}
	o.mu.Unlock()
	if l.o.background && len(c.cfg.observers) > 0 {
		ev := o.event(c.cfg.name, "http", time.Since(o.began))
		observers(c.cfg.observers).ObserveRequest(ctx, ev)
	}
}

// observeBackground gives the request of a background refresh an observation of its own, when r's
// has one: the refresh outlives the request that started it.
func observeBackground(r *http.Request) *http.Request {
	o := observationOf(r.Context())
	if o == nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), observationKey{}, &observation{
		began: time.Now(), method: o.method, path: o.path,
	}))
}

// loadEnded reports a load of r that took d and returned err to the observers and, at debug level, in
// the log.
func (e *engine[K, V]) loadEnded(ctx context.Context, r *ref[K], d time.Duration, err error) {
	obs, logger, name, kind := e.cfg.observers, e.logger, e.name, e.kind
	debug := logger.Enabled(ctx, slog.LevelDebug)
	if len(obs) == 0 && !debug {
		return
	}
	ev := RequestEvent{Cache: name, Kind: kind, Outcome: "LOAD", Key: keyDigest(e.storeKey(r).s), Duration: d, Run: d, Err: err}
	if len(obs) > 0 {
		observers(obs).ObserveRequest(ctx, ev)
	}
	if debug {
		attrs := []slog.Attr{slog.String(kind, name), slog.String("key", ev.Key), slog.Duration("duration", d)}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		logger.LogAttrs(ctx, slog.LevelDebug, "stampede: load", attrs...)
	}
}
